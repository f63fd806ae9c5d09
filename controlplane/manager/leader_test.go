package manager

import (
	"math/rand/v2"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/store"
)

func applyBatch(t *testing.T, st *store.Store, b *store.Batch) {
	t.Helper()
	data, err := store.Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Apply(st.Index()+1, data); err != nil {
		t.Fatalf("apply: %v", err)
	}
}

// TestPlanConvergesThroughTheStore runs the leader's plan against a real
// store until it has nothing left to write: the batches it proposes must be
// accepted by the FSM (their expectations hold), every replica gets placed
// on a ready node without over-committing it, and an impossible task keeps
// the scheduler's reason.
func TestPlanConvergesThroughTheStore(t *testing.T) {
	st := store.New()
	now := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	cluster := api.Cluster{ID: "c", Network: api.ClusterNetworkSpec{PodCIDR: "10.42.0.0/16", ServiceCIDR: "10.43.0.0/16"}, NodeDownGrace: api.Duration(time.Minute)}
	node := func(id string, mem int64) api.Node {
		return api.Node{ID: id, Spec: api.NodeSpec{Role: api.RoleWorker, Availability: api.AvailabilityActive},
			Status: api.NodeStatus{State: api.NodeReady, Heartbeat: now, Capacity: api.Resources{NanoCPUs: 2e9, MemoryBytes: mem}}}
	}
	svc := func(id, name string, replicas uint64, reserve int64) api.Service {
		return api.Service{ID: id, SpecVersion: 1, Spec: api.ServiceSpec{Name: name, Mode: api.ModeReplicated, Replicas: replicas,
			Task: api.TaskSpec{Container: api.ContainerSpec{Image: "demo"}, Resources: api.ResourceReqs{Reservations: api.Resources{MemoryBytes: reserve}},
				Restart: api.RestartPolicy{Condition: api.RestartAny}},
			Update: api.UpdateConfig{Strategy: api.StrategyRolling, Parallelism: 1}}}
	}
	applyBatch(t, st, &store.Batch{Now: now, Cluster: &cluster,
		PutNodes:    []api.Node{node("n1", 1<<30), node("n2", 1<<30)},
		PutServices: []api.Service{svc("s1", "web", 4, 256<<20), svc("s2", "huge", 1, 8<<30)},
	})
	m := &Manager{st: st, log: zap.NewNop(), ident: &NodeIdentity{NodeID: "n1"}}
	rnd := rand.New(rand.NewPCG(1, 2))
	rounds := 0
	for ; rounds < 10; rounds++ {
		b, _ := m.plan(st.View(), now, now, rnd)
		if b == nil {
			break
		}
		applyBatch(t, st, b)
	}
	if rounds == 0 || rounds == 10 {
		t.Fatalf("plan took %d rounds (want to converge in between)", rounds)
	}
	v := st.View()
	perNode := map[string]int{}
	for _, tk := range v.TasksByService("s1") {
		if tk.Status.State != api.TaskAssigned || tk.NodeID == "" {
			t.Errorf("web task %s: state %s node %q, want assigned", tk.ID, tk.Status.State, tk.NodeID)
		}
		perNode[tk.NodeID]++
	}
	if perNode["n1"] != 2 || perNode["n2"] != 2 {
		t.Errorf("web spread %v, want 2 and 2 (4 × 256 MiB on two 1 GiB nodes)", perNode)
	}
	huge := v.TasksByService("s2")
	if len(huge) != 1 || huge[0].Status.State != api.TaskPending || huge[0].Status.Message == "" {
		t.Fatalf("huge: %+v, want one pending task with a reason", huge)
	}
	t.Logf("unplaced reason: %s", huge[0].Status.Message)
	c := v.Cluster()
	if c.Subnets["n1"] == "" || c.Subnets["n2"] == "" || c.VIPs["s1"] == "" {
		t.Errorf("allocations missing: subnets %v vips %v", c.Subnets, c.VIPs)
	}
}
