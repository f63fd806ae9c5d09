package manager

import (
	"fmt"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/endpoints"
	"github.com/warrenhq/warren/controlplane/store"
	"github.com/warrenhq/warren/controlplane/tabledelta"
)

// BenchmarkServiceTable builds the service table the managers send every
// node's watch, once per change, at issue 19's size (2,000 nodes × 25
// tasks in 100 services; 500 × 20 under WARREN_BENCH_SMOKE): from scratch
// (the baseline: every service computed and encoded) and from the table
// before (what the managers do: a service whose tasks did not change
// keeps its entry and encoding). Each change is one task's health moving,
// what a task's report does. It reports per table the time and bytes
// allocated of each, their ratios, and what 64 tables held at once (the
// tables in flight: each lives as long as the slowest answer built from
// it) keep on the heap, beside the store's own heap at that size.
func BenchmarkServiceTable(b *testing.B) {
	nodes, perNode, services := issueSize()
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	st, tasks := tableStore(b, nodes, perNode, services)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	storeHeap := float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / (1 << 20)
	rnd := mrand.New(mrand.NewPCG(1, 2))
	const held = 64
	run := func(from bool) (perTable time.Duration, alloc, retained float64) {
		var prevSh *endpoints.Shared
		var prevEnc *tabledelta.Encoded
		keep := make([]*tabledelta.Encoded, 0, held)
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		perTable, alloc = measure(held, func() {
			tk := tasks[rnd.IntN(len(tasks))]
			stat := tk.Status
			stat.Health = map[bool]api.HealthState{true: api.HealthHealthy, false: api.HealthUnhealthy}[rnd.IntN(2) == 0]
			applyBatch(b, st, &store.Batch{TaskStatuses: []store.TaskStatusUpdate{{TaskID: tk.ID, NodeID: tk.NodeID, Status: stat}}})
			v := st.View()
			view := endpoints.ClusterView{Index: v.Index(), Nodes: v.Nodes(), Services: v.Services(),
				NodeTasks: v.TasksByNode, ServiceTasks: v.TasksByService}
			if from {
				view.ServiceTasksChanged = v.ServiceTasksChanged
			}
			sh := endpoints.NewSharedFrom(view, prevSh)
			enc, err := tabledelta.EncodeFrom(prevEnc, sh.Services(), sh.ServiceKeys(), sh.Peers())
			if err != nil {
				b.Fatal(err)
			}
			prevSh, prevEnc = sh, enc
			keep = append(keep, enc)
		})
		runtime.GC()
		runtime.ReadMemStats(&m1)
		retained = float64(int64(m1.HeapAlloc) - int64(m0.HeapAlloc))
		runtime.KeepAlive(keep)
		return perTable, alloc, retained
	}
	for range b.N {
		tScratch, aScratch, rScratch := run(false)
		tFrom, aFrom, rFrom := run(true)
		b.ReportMetric(float64(tFrom.Microseconds())/1000, "ms/table")
		b.ReportMetric(float64(tScratch.Microseconds())/1000, "baseline-ms/table")
		b.ReportMetric(float64(tScratch)/float64(tFrom), "speedup")
		b.ReportMetric(aFrom/(1<<20), "MiB-alloc/table")
		b.ReportMetric(aScratch/aFrom, "alloc-ratio")
		b.ReportMetric(rFrom/(1<<20), "MiB-held-64-tables")
		b.ReportMetric(rScratch/(1<<20), "baseline-MiB-held-64-tables")
		b.ReportMetric(storeHeap, "MiB-store")
		b.Logf("%d nodes × %d tasks (the store: %.1f MiB of heap): a table from scratch %v (%.1f MiB allocated), from the one before %v (%.1f MiB); 64 tables held %.1f MiB vs %.1f MiB",
			nodes, perNode, storeHeap, tScratch, aScratch/(1<<20), tFrom, aFrom/(1<<20), rScratch/(1<<20), rFrom/(1<<20))
	}
}

// issueSize is issue 19's cluster: 2,000 nodes × 25 tasks in 100
// services, or 500 × 20 under WARREN_BENCH_SMOKE (make ci).
func issueSize() (nodes, perNode, services int) {
	if os.Getenv("WARREN_BENCH_SMOKE") != "" {
		return 500, 20, 100
	}
	return 2000, 25, 100
}

// measure runs f rounds times and returns the time and the bytes
// allocated per round.
func measure(rounds int, f func()) (time.Duration, float64) {
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	start := time.Now()
	for range rounds {
		f()
	}
	el := time.Since(start) / time.Duration(rounds)
	runtime.ReadMemStats(&m1)
	return el, float64(m1.TotalAlloc-m0.TotalAlloc) / float64(rounds)
}

// tableStore is a store of nodes ready nodes with perNode running tasks
// each, spread over services.
func tableStore(b *testing.B, nodes, perNode, services int) (*store.Store, []api.Task) {
	b.Helper()
	st := store.New()
	var batch store.Batch
	for i := range services {
		batch.PutServices = append(batch.PutServices, api.Service{ID: fmt.Sprintf("s%04d", i),
			Spec:     api.ServiceSpec{Name: fmt.Sprintf("svc-%04d", i), Mode: api.ModeReplicated, Replicas: uint64(nodes * perNode / services)},
			Endpoint: api.Endpoint{VIP: fmt.Sprintf("10.43.%d.%d", i/250, i%250+2)}})
	}
	for i := range nodes {
		batch.PutNodes = append(batch.PutNodes, api.Node{ID: fmt.Sprintf("n%05d", i), Spec: api.NodeSpec{Role: api.RoleWorker, Availability: api.AvailabilityActive},
			Status: api.NodeStatus{State: api.NodeReady, Addr: fmt.Sprintf("192.0.%d.%d", i/250, i%250+1),
				Network: api.NodeNetwork{Subnet: fmt.Sprintf("10.%d.%d.0/24", 64+i/256, i%256), WGPublicKey: fmt.Sprintf("key-%05d", i)}}})
	}
	applyBatch(b, st, &batch)
	var tasks []api.Task
	for i := range nodes * perNode {
		node := i % nodes
		tasks = append(tasks, api.Task{ID: fmt.Sprintf("t%07d", i), ServiceID: fmt.Sprintf("s%04d", i%services), Slot: uint64(i/services + 1),
			NodeID: fmt.Sprintf("n%05d", node), DesiredState: api.TaskRunning, Version: "v1", ServiceName: fmt.Sprintf("svc-%04d", i%services),
			Spec:   api.TaskSpec{Container: api.ContainerSpec{Image: "warren/demo:v1"}},
			Status: api.TaskStatus{State: api.TaskRunning, Addr: fmt.Sprintf("10.%d.%d.%d", 64+node/256, node%256, i/nodes+2)}})
	}
	for i := 0; i < len(tasks); i += 5000 {
		applyBatch(b, st, &store.Batch{PutTasks: tasks[i:min(i+5000, len(tasks))]})
	}
	return st, tasks
}

func applyBatch(b *testing.B, st *store.Store, batch *store.Batch) {
	b.Helper()
	batch.Now = time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	data, err := store.Encode(batch)
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Apply(st.View().Index()+1, data); err != nil {
		b.Fatal(err)
	}
}
