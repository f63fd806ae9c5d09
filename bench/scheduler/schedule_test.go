package scheduler

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/scheduler"
)

const (
	benchNodes = 500
	benchTasks = 10000
	gib        = 1 << 30
)

// cluster builds 500 nodes over three sites, a tenth of them managers, each
// with 16 cores and 64 GiB, and 10,000 pending tasks of 50 services; a third
// of the services are pinned to a site and every task reserves a little CPU
// and memory, so filters, reservations and spread all do real work.
func cluster() ([]api.Node, []api.Task) {
	sites := []string{"a", "b", "c"}
	nodes := make([]api.Node, benchNodes)
	for i := range nodes {
		role := api.RoleWorker
		if i%10 == 0 {
			role = api.RoleManager
		}
		nodes[i] = api.Node{
			ID:   fmt.Sprintf("node-%03d", i),
			Spec: api.NodeSpec{Role: role, Availability: api.AvailabilityActive, Labels: map[string]string{"site": sites[i%3]}},
			Status: api.NodeStatus{State: api.NodeReady, Hostname: fmt.Sprintf("h%03d", i), OS: "linux", Arch: "amd64",
				Capacity: api.Resources{NanoCPUs: 16e9, MemoryBytes: 64 * gib}},
		}
	}
	tasks := make([]api.Task, benchTasks)
	for i := range tasks {
		svc := i % 50
		var cons []string
		if svc%3 == 0 {
			cons = []string{"node.labels.site==" + sites[svc%9/3], "node.role==worker"}
		}
		tasks[i] = api.Task{
			ID: fmt.Sprintf("task-%05d", i), ServiceID: fmt.Sprintf("svc-%02d", svc), Slot: uint64(i/50 + 1),
			DesiredState: api.TaskRunning, Status: api.TaskStatus{State: api.TaskPending},
			Spec: api.TaskSpec{
				Resources: api.ResourceReqs{Reservations: api.Resources{NanoCPUs: 1e8, MemoryBytes: gib / 8}},
				Placement: api.Placement{Constraints: cons},
			},
		}
	}
	return nodes, tasks
}

// leastLoaded is the baseline: the simplest spreading placement that never
// over-commits memory — scan every node, take the one with the most free
// memory — with no constraints, no per-service spread, no tie-break and no
// explanations. The ratio to it is the price of Warren's pipeline.
func leastLoaded(nodes []api.Node, pending []api.Task) int {
	free := make([]int64, len(nodes))
	for i := range nodes {
		free[i] = nodes[i].Status.Capacity.MemoryBytes
	}
	placed := 0
	for i := range pending {
		need := pending[i].Spec.Resources.Reservations.MemoryBytes
		best := -1
		for j := range free {
			if free[j] >= need && (best < 0 || free[j] > free[best]) {
				best = j
			}
		}
		if best >= 0 {
			free[best] -= need
			placed++
		}
	}
	return placed
}

func BenchmarkSchedule10kTasks500Nodes(b *testing.B) {
	nodes, pending := cluster()

	// The baseline runs in the same process on the same input, so the
	// ratio is comparable across machines where tasks/s is not.
	const baseRuns = 5
	start := time.Now()
	for i := 0; i < baseRuns; i++ {
		if leastLoaded(nodes, pending) != benchTasks {
			b.Fatal("baseline did not place every task")
		}
	}
	base := time.Since(start) / baseRuns

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		plan := scheduler.Schedule(nodes, pending, pending, rand.New(rand.NewPCG(uint64(i), 1)))
		if len(plan.Placements) != benchTasks {
			b.Fatalf("placed %d of %d: %v", len(plan.Placements), benchTasks, plan.Unplaced[:1])
		}
	}
	b.StopTimer()
	per := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(benchTasks)/per.Seconds(), "tasks/s")
	b.ReportMetric(float64(benchTasks)/base.Seconds(), "baseline-tasks/s")
	b.ReportMetric(float64(per)/float64(base), "x-baseline-time")
}
