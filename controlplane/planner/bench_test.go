package planner

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// BenchmarkPlanSteady is one plan of a settled cluster — 100 nodes, 100
// services of 10 running replicas — which is what the leader pays for
// every plan that finds nothing, or little, to do.
func BenchmarkPlanSteady(b *testing.B) {
	s := steadySnapshot(100, 100, 10)
	ids := func() string { return "new" }
	b.ReportAllocs()
	for b.Loop() {
		Plan(s, now, rand.New(rand.NewPCG(1, 2)), ids)
	}
}

func steadySnapshot(nodes, services, replicas int) Snapshot {
	s := Snapshot{Cluster: cluster(), Heartbeats: map[string]time.Time{}, Acks: map[string]api.TableAck{}}
	for i := range nodes {
		id := fmt.Sprintf("n%03d", i)
		n := worker(id, now)
		n.Status.Capacity = api.Resources{NanoCPUs: 16e9, MemoryBytes: 64 << 30}
		s.Nodes = append(s.Nodes, n)
		s.Heartbeats[id] = now
	}
	for i := range services {
		svc := service(fmt.Sprintf("s%03d", i), uint64(replicas), api.UpdateConfig{Strategy: api.StrategyRolling, Parallelism: 1})
		s.Services = append(s.Services, svc)
		for r := 1; r <= replicas; r++ {
			s.Tasks = append(s.Tasks, runningTask(fmt.Sprintf("t%03d-%02d", i, r), svc, uint64(r), s.Nodes[(i*replicas+r)%nodes].ID))
		}
	}
	// Allocate once, so the plans measured do not all allocate again.
	if res := Plan(s, now, rand.New(rand.NewPCG(1, 2)), func() string { return "x" }); res.Batch != nil && res.Batch.Cluster != nil {
		s.Cluster = res.Batch.Cluster
	}
	return s
}
