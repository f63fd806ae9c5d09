package manager

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/raftnode"
	"github.com/warrenhq/warren/controlplane/store"
)

// entryLimit is an apply onto a real store that refuses, as raft does
// above MaxEntryBytes, any batch with more than max task writes, and
// records the task writes of each entry it took.
type entryLimit struct {
	st      *store.Store
	max     int
	entries []int
	fail    func(n int) error // refuses the n-th entry (from 0) when set
}

func (e *entryLimit) apply(_ context.Context, b *store.Batch) (uint64, error) {
	if n := len(b.PutTasks) + len(b.DeleteTasks); n > e.max {
		return 0, fmt.Errorf("batch of %d task writes: %w", n, raftnode.ErrTooLarge)
	}
	if e.fail != nil {
		if err := e.fail(len(e.entries)); err != nil {
			return 0, err
		}
	}
	data, err := store.Encode(b)
	if err != nil {
		return 0, err
	}
	if err := e.st.Apply(e.st.Index()+1, data); err != nil {
		return e.st.Index(), err
	}
	e.entries = append(e.entries, len(b.PutTasks)+len(b.DeleteTasks))
	return e.st.Index(), nil
}

// TestPlanTooLargeForOneEntryLandsInParts places a service whose plan is
// over the entry limit: it lands in parts in the one round (before, the
// leader re-planned the refused batch forever), the service's own write in
// the last part; a conflict in a part stops the rest.
func TestPlanTooLargeForOneEntryLandsInParts(t *testing.T) {
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	setup := func(t *testing.T) (*store.Store, *Manager) {
		st := store.New()
		cluster := api.Cluster{ID: "c", Network: api.ClusterNetworkSpec{PodCIDR: "10.42.0.0/16", ServiceCIDR: "10.43.0.0/16"}, NodeDownGrace: api.Duration(time.Minute)}
		var nodes []api.Node
		for _, id := range []string{"n1", "n2", "n3"} {
			nodes = append(nodes, api.Node{ID: id, Spec: api.NodeSpec{Role: api.RoleWorker, Availability: api.AvailabilityActive},
				Status: api.NodeStatus{State: api.NodeReady, Heartbeat: now, Capacity: api.Resources{NanoCPUs: 16e9, MemoryBytes: 64 << 30}}})
		}
		svc := api.Service{ID: "s1", SpecVersion: 1, Spec: api.ServiceSpec{Name: "web", Mode: api.ModeReplicated, Replicas: 21,
			Task:   api.TaskSpec{Container: api.ContainerSpec{Image: "demo"}, Restart: api.RestartPolicy{Condition: api.RestartAny}},
			Update: api.UpdateConfig{Strategy: api.StrategyRolling, Parallelism: 1}}}
		applyBatch(t, st, &store.Batch{Now: now, Cluster: &cluster, PutNodes: nodes, PutServices: []api.Service{svc}})
		return st, &Manager{st: st, log: zap.NewNop(), ident: &NodeIdentity{NodeID: "n1"}}
	}

	t.Run("every part lands", func(t *testing.T) {
		st, m := setup(t)
		b, _ := m.plan(st.View(), now, now, rand.New(rand.NewPCG(1, 2)))
		if b == nil || len(b.PutTasks) != 21 {
			t.Fatalf("plan: want 21 task writes, got %+v", b)
		}
		lim := &entryLimit{st: st, max: 4}
		idx, parts, err := applySplit(context.Background(), b, lim.apply)
		if err != nil {
			t.Fatalf("applySplit: %v", err)
		}
		if idx != st.Index() {
			t.Errorf("index %d, want the last part's %d", idx, st.Index())
		}
		sum := 0
		for _, n := range lim.entries {
			if n > lim.max {
				t.Errorf("an entry of %d task writes went through a limit of %d", n, lim.max)
			}
			sum += n
		}
		if sum != 21 || parts < len(lim.entries) || len(lim.entries) < 6 {
			t.Errorf("entries %v (%d parts tried): want the 21 writes in at least 6 entries of ≤ 4", lim.entries, parts)
		}
		if got := len(st.View().Tasks()); got != 21 {
			t.Errorf("%d tasks in the store after one round, want 21", got)
		}
		// What landed is a state the planner goes on from: it converges.
		for round := 0; ; round++ {
			if round == 10 {
				t.Fatal("no convergence in 10 rounds after the split plan")
			}
			b, _ := m.plan(st.View(), now, now, rand.New(rand.NewPCG(3, 4)))
			if b == nil {
				break
			}
			if _, _, err := applySplit(context.Background(), b, lim.apply); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		for _, tk := range st.View().Tasks() {
			if tk.NodeID == "" {
				t.Errorf("task %s (slot %d) not placed", tk.ID, tk.Slot)
			}
		}
	})

	t.Run("a conflict stops the parts after it", func(t *testing.T) {
		st, m := setup(t)
		b, _ := m.plan(st.View(), now, now, rand.New(rand.NewPCG(1, 2)))
		lim := &entryLimit{st: st, max: 4, fail: func(n int) error {
			if n == 2 {
				return store.ErrConflict
			}
			return nil
		}}
		before := st.Index()
		_, parts, err := applySplit(context.Background(), b, lim.apply)
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("err = %v, want the conflict", err)
		}
		if len(lim.entries) != 2 || st.Index() != before+2 {
			t.Errorf("entries %v, store moved %d: want the two parts before the conflict and nothing after", lim.entries, st.Index()-before)
		}
		if parts < 3 {
			t.Errorf("parts = %d, want the conflicting one counted", parts)
		}
	})
}
