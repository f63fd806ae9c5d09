package raftbench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/raftnode"
	"github.com/warrenhq/warren/controlplane/raftnode/raftnodetest"
	"github.com/warrenhq/warren/controlplane/scheduler"
	"github.com/warrenhq/warren/controlplane/store"
)

var now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func cluster(b *testing.B) *raftnode.Node {
	c := raftnodetest.NewCluster(b, 3, nil)
	c.Form()
	return c.Leader(10 * time.Second).Node
}

var taskSpec = api.TaskSpec{
	Container: api.ContainerSpec{Image: "warren/demo:1", Env: []string{"MODE=bench"}},
	Resources: api.ResourceReqs{Reservations: api.Resources{NanoCPUs: 1e8, MemoryBytes: 64 << 20}},
	Restart:   api.RestartPolicy{Condition: api.RestartAny},
}

func placed(id, node string) api.Task {
	return api.Task{ID: id, ServiceID: "svc-web", ServiceName: "web", NodeID: node, Spec: taskSpec,
		DesiredState: api.TaskRunning, Status: api.TaskStatus{State: api.TaskAssigned, Timestamp: now}}
}

// applyN proposes n entries from writers goroutines, each entry holding
// perEntry placements, and returns entries per second.
func applyN(b *testing.B, lead *raftnode.Node, prefix string, n, writers, perEntry int) float64 {
	b.Helper()
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				batch := &store.Batch{Now: now}
				for k := 0; k < perEntry; k++ {
					batch.PutTasks = append(batch.PutTasks, placed(fmt.Sprintf("%s-%06d-%04d", prefix, i, k), fmt.Sprintf("node-%03d", (i+k)%500)))
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := lead.Apply(ctx, batch)
				cancel()
				if err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatalf("%s: apply: %v", prefix, err)
	}
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkApplyThroughput compares, on one cluster in one run: one writer
// proposing one entry at a time (the baseline), 64 concurrent writers (raft
// batches their appends and fsyncs), and entries that each carry 100 task
// placements, which is how the leader writes plans.
func BenchmarkApplyThroughput(b *testing.B) {
	lead := cluster(b)
	applyN(b, lead, "warm", 20, 1, 1)
	b.ResetTimer()
	var seq, par, batched float64
	for i := 0; i < b.N; i++ {
		seq += applyN(b, lead, fmt.Sprintf("seq%d", i), 300, 1, 1)
		par += applyN(b, lead, fmt.Sprintf("par%d", i), 3000, 64, 1)
		batched += applyN(b, lead, fmt.Sprintf("bat%d", i), 100, 1, 100)
	}
	n := float64(b.N)
	b.ReportMetric(seq/n, "seq-entries/s")
	b.ReportMetric(par/n, "w64-entries/s")
	b.ReportMetric(par/seq, "w64-vs-seq")
	b.ReportMetric(batched/n, "batch100-entries/s")
	b.ReportMetric(batched*100/n, "batch100-tasks/s")
	b.ReportMetric(batched*100/seq, "batch100-tasks-vs-seq")
}

// BenchmarkPlace10kTasksOn500Nodes registers 500 nodes and a service with
// 10,000 pending replicas, then times the leader loop that places them: take
// a View, call scheduler.Schedule on up to 1,000 pending tasks, propose the
// placements as one batch guarded by Expect, repeat. The baseline, measured
// in the same run, proposes placements one task per entry from 64 writers
// (first 2,000 tasks only, to bound the run time).
func BenchmarkPlace10kTasksOn500Nodes(b *testing.B) {
	const (
		nodes   = 500
		tasks   = 10000
		perPlan = 1000
	)
	var batchedRate, baseRate float64
	for iter := 0; iter < b.N; iter++ {
		b.StopTimer()
		lead := cluster(b)
		st := lead.Store()
		setup := &store.Batch{Now: now, PutServices: []api.Service{{ID: "svc-web", Spec: api.ServiceSpec{
			Name: "web", Mode: api.ModeReplicated, Replicas: tasks, Task: taskSpec}}}}
		for i := 0; i < nodes; i++ {
			setup.NodeStatuses = append(setup.NodeStatuses, store.NodeStatusUpdate{NodeID: fmt.Sprintf("node-%03d", i), Status: api.NodeStatus{
				State: api.NodeReady, Hostname: fmt.Sprintf("h%03d", i), OS: "linux", Arch: "amd64",
				Capacity: api.Resources{NanoCPUs: 4e9, MemoryBytes: 8 << 30}}})
		}
		mustApply(b, lead, setup)
		for i := 0; i < tasks; i += perPlan {
			pending := &store.Batch{Now: now}
			for k := i; k < i+perPlan; k++ {
				t := placed(fmt.Sprintf("task-%05d", k), "")
				t.Slot = uint64(k + 1)
				t.Status.State = api.TaskPending
				pending.PutTasks = append(pending.PutTasks, t)
			}
			mustApply(b, lead, pending)
		}
		rnd := rand.New(rand.NewPCG(1, 2))
		b.StartTimer()

		start := time.Now()
		placedCount := 0
		for placedCount < tasks {
			v := lead.Store().View()
			all := v.TasksByService("svc-web")
			var pend []api.Task
			for _, t := range all {
				if t.NodeID == "" && len(pend) < perPlan {
					pend = append(pend, t)
				}
			}
			plan := scheduler.Schedule(v.Nodes(), all, pend, rnd)
			if len(plan.Placements) == 0 {
				b.Fatalf("scheduler placed nothing: %+v", plan.Unplaced[:1])
			}
			byID := make(map[string]api.Task, len(pend))
			for _, t := range pend {
				byID[t.ID] = t
			}
			batch := &store.Batch{Now: now}
			for _, p := range plan.Placements {
				t := byID[p.TaskID]
				batch.Expect = append(batch.Expect, store.Expectation{Kind: store.KindTask, ID: t.ID, Version: t.Meta.Version})
				t.NodeID = p.NodeID
				t.Status = api.TaskStatus{State: api.TaskAssigned, Timestamp: now}
				batch.PutTasks = append(batch.PutTasks, t)
			}
			mustApply(b, lead, batch)
			placedCount += len(plan.Placements)
		}
		batchedRate += float64(tasks) / time.Since(start).Seconds()
		if got := len(st.View().TasksByNode("node-042")); got == 0 {
			b.Fatal("node-042 got no tasks: placements not visible in the store")
		}

		b.StopTimer()
		baseRate += applyN(b, lead, fmt.Sprintf("one-by-one%d", iter), 2000, 64, 1)
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(batchedRate/n, "placed-tasks/s")
	b.ReportMetric(baseRate/n, "baseline-1-per-entry-tasks/s")
	b.ReportMetric(batchedRate/baseRate, "batched-vs-baseline")
}

func mustApply(b *testing.B, n *raftnode.Node, batch *store.Batch) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := n.Apply(ctx, batch); err != nil {
		b.Fatalf("apply: %v", err)
	}
}
