package manager

import (
	"math/rand/v2"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/store"
)

// TestPlanCreatesVolumeAtFirstUseAndFollowsIt: a service mounting a volume
// that does not exist gets it created on the node its task lands on, in the
// same batch; the task carries the attachment; after the node is drained
// the replacement stays pending with the reason instead of moving away
// from the data.
func TestPlanCreatesVolumeAtFirstUseAndFollowsIt(t *testing.T) {
	st := store.New()
	now := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	cluster := api.Cluster{ID: "c", Network: api.ClusterNetworkSpec{PodCIDR: "10.42.0.0/16", ServiceCIDR: "10.43.0.0/16"}, NodeDownGrace: api.Duration(time.Minute)}
	node := func(id string) api.Node {
		return api.Node{ID: id, Spec: api.NodeSpec{Role: api.RoleWorker, Availability: api.AvailabilityActive},
			Status: api.NodeStatus{State: api.NodeReady, Heartbeat: now, Capacity: api.Resources{NanoCPUs: 2e9, MemoryBytes: 1 << 30}}}
	}
	svc := api.Service{ID: "s1", SpecVersion: 1, Spec: api.ServiceSpec{Name: "pg", Mode: api.ModeReplicated, Replicas: 1,
		Task: api.TaskSpec{Container: api.ContainerSpec{Image: "demo", Mounts: []api.Mount{{Type: api.MountVolume, Source: "db-data", Target: "/data"}}},
			Restart: api.RestartPolicy{Condition: api.RestartAny}},
		Update: api.UpdateConfig{Strategy: api.StrategyRolling, Parallelism: 1}}}
	applyBatch(t, st, &store.Batch{Now: now, Cluster: &cluster, PutNodes: []api.Node{node("n1"), node("n2")}, PutServices: []api.Service{svc}})
	m := &Manager{st: st, log: zap.NewNop(), ident: &NodeIdentity{NodeID: "n1"}}
	rnd := rand.New(rand.NewPCG(1, 2))
	converge := func() {
		t.Helper()
		for i := 0; i < 10; i++ {
			b, _ := m.plan(st.View(), now, now, rnd)
			if b == nil {
				return
			}
			applyBatch(t, st, b)
		}
		t.Fatal("plan did not converge in 10 rounds")
	}
	converge()
	v := st.View()
	vol, ok := v.Volume("db-data")
	if !ok || vol.Status.Node == "" || vol.Spec.Driver != api.LocalDriver || vol.Status.CreatedBy != "pg" {
		t.Fatalf("volume after first use = %+v, %v", vol, ok)
	}
	tasks := v.TasksByService("s1")
	if len(tasks) != 1 || tasks[0].NodeID != vol.Status.Node || len(tasks[0].Volumes) != 1 || tasks[0].Volumes[0].Name != "db-data" {
		t.Fatalf("task = %+v, want on %s with the attachment", tasks, vol.Status.Node)
	}
	// Drain the volume's node; the task is replaced, and the replacement waits.
	n, _ := v.Node(vol.Status.Node)
	n.Spec.Availability = api.AvailabilityDrain
	applyBatch(t, st, &store.Batch{Now: now, PutNodes: []api.Node{n}})
	converge()
	v = st.View()
	var pending []api.Task
	for _, tk := range v.TasksByService("s1") {
		if tk.Status.State == api.TaskPending {
			pending = append(pending, tk)
		}
	}
	want := "0/2 nodes available: 1 not active (paused or drained), 1 do not hold volume db-data"
	if len(pending) != 1 || pending[0].Status.Message != want {
		t.Fatalf("after drain: pending %+v, want one with %q", pending, want)
	}
	if got, _ := v.Volume("db-data"); got.Status.Node != vol.Status.Node {
		t.Fatalf("volume moved from %s to %s", vol.Status.Node, got.Status.Node)
	}
}
