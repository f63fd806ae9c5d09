package store

import (
	"fmt"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
)

func placementBatch(round, n int) *Batch {
	b := &Batch{Now: t0}
	spec := api.TaskSpec{Container: api.ContainerSpec{Image: "warren/demo:1", Env: []string{"A=1", "B=2"}},
		Resources: api.ResourceReqs{Reservations: api.Resources{NanoCPUs: 1e8, MemoryBytes: 64 << 20}}}
	for i := 0; i < n; i++ {
		b.PutTasks = append(b.PutTasks, api.Task{
			ID: fmt.Sprintf("task-%06d-%04d", round, i), ServiceID: fmt.Sprintf("svc-%03d", i%50), Slot: uint64(i),
			NodeID: fmt.Sprintf("node-%03d", i%500), Spec: spec, ServiceName: "web", DesiredState: api.TaskRunning,
			Status: api.TaskStatus{State: api.TaskAssigned},
		})
	}
	return b
}

// BenchmarkApplyPlacements applies batches of 1,000 task placements into a
// growing store (decode included); ns/task is the figure to watch.
func BenchmarkApplyPlacements(b *testing.B) {
	s := New()
	datas := make([][]byte, 0, 16)
	for r := 0; r < 16; r++ {
		d, err := Encode(placementBatch(r, 1000))
		if err != nil {
			b.Fatal(err)
		}
		datas = append(datas, d)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%16 == 0 {
			s = New()
		}
		if err := s.Apply(s.Index()+1, datas[i%16]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/task")
}

// BenchmarkView is the cost of taking a view and reading one node's tasks
// from a 10,000-task store, what a leader loop or agent watch does per change.
func BenchmarkView(b *testing.B) {
	s := New()
	for r := 0; r < 10; r++ {
		d, _ := Encode(placementBatch(r, 1000))
		if err := s.Apply(s.Index()+1, d); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if len(s.View().TasksByNode("node-042")) != 20 {
			b.Fatal("wrong count")
		}
	}
}
