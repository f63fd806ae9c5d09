package apiserver

import (
	"bytes"
	"fmt"
	mrand "math/rand/v2"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/endpoints"
	"github.com/warrenhq/warren/controlplane/store"
	"github.com/warrenhq/warren/controlplane/tabledelta"
)

// The table the cache builds from the one before (reusing the entries and
// encodings of services whose key did not change) is, after every change
// of a random history, byte for byte the table built from scratch — and
// it did reuse: a change touching one service leaves every other entry
// the very one it was.
func TestTableFromPreviousEqualsTableFromScratch(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { incrementalHistory(t, seed) })
	}
}

func incrementalHistory(t *testing.T, seed uint64) {
	rnd := mrand.New(mrand.NewPCG(seed, 19))
	c := newCluster(t)
	nodes := []string{"n1", "n2", "n3", "n4"}
	var put []api.Node
	for i, id := range nodes {
		put = append(put, api.Node{ID: id, Spec: api.NodeSpec{Role: api.RoleWorker, Availability: api.AvailabilityActive},
			Status: api.NodeStatus{State: api.NodeReady, Addr: fmt.Sprintf("192.0.2.%d", i+1),
				Network: api.NodeNetwork{Subnet: fmt.Sprintf("10.42.%d.0/24", i+1), WGPublicKey: "k" + id}}})
	}
	services := []string{"s1", "s2", "s3", "s4", "s5"}
	var svcs []api.Service
	for i, id := range services {
		svcs = append(svcs, api.Service{ID: id, Spec: api.ServiceSpec{Name: "svc" + id, Mode: api.ModeReplicated, Replicas: 3},
			Endpoint: api.Endpoint{VIP: fmt.Sprintf("10.43.0.%d", i+2)}})
	}
	c.apply(t, &store.Batch{PutNodes: put, PutServices: svcs})
	tasks := map[string]api.Task{}
	next := 0
	pick := func(xs []string) string { return xs[rnd.IntN(len(xs))] }
	anyTask := func() (api.Task, bool) {
		for _, tk := range tasks { // map order: random enough
			return tk, true
		}
		return api.Task{}, false
	}
	var cache sharedCache
	for step := range 120 {
		var b store.Batch
		switch op := rnd.IntN(7); {
		case op <= 2 || len(tasks) == 0: // a task placed, running
			next++
			tk := api.Task{ID: fmt.Sprintf("t%03d", next), ServiceID: pick(services), NodeID: pick(nodes), DesiredState: api.TaskRunning,
				Version: pick([]string{"v1", "v2"}), Status: api.TaskStatus{State: api.TaskRunning, Addr: fmt.Sprintf("10.42.9.%d", next)}}
			tasks[tk.ID] = tk
			b.PutTasks = []api.Task{tk}
		case op == 3: // a task's health moves
			tk, _ := anyTask()
			st := tk.Status
			st.Health = api.HealthState(pick([]string{string(api.HealthHealthy), string(api.HealthUnhealthy)}))
			b.TaskStatuses = []store.TaskStatusUpdate{{TaskID: tk.ID, NodeID: tk.NodeID, Status: st}}
		case op == 4: // a task removed
			tk, _ := anyTask()
			delete(tasks, tk.ID)
			b.DeleteTasks = []string{tk.ID}
		case op == 5: // a node goes down or comes back
			id := pick(nodes)
			n, _ := c.st.View().Node(id)
			n.Status.State = map[api.NodeState]api.NodeState{api.NodeReady: api.NodeDown, api.NodeDown: api.NodeReady}[n.Status.State]
			b.PutNodes = []api.Node{n}
		case op == 6: // a service's weights change
			s, _ := c.st.View().Service(pick(services))
			s.Update = &api.UpdateStatus{Weights: map[string]uint32{"v1": uint32(rnd.IntN(101))}}
			b.PutServices = []api.Service{s}
		}
		c.apply(t, &b)
		var before *sharedAt
		if cache.cur != nil {
			before = cache.cur
		}
		_, got, err := cache.latest(c.st.View)
		if err != nil {
			t.Fatal(err)
		}
		v := c.st.View()
		var cl api.Cluster
		if x := v.Cluster(); x != nil {
			cl = *x
		}
		fresh := endpoints.NewShared(endpoints.ClusterView{Index: v.Index(), Cluster: cl, Nodes: v.Nodes(), Services: v.Services(), Tasks: v.Tasks()})
		want, err := tabledelta.Encode(fresh.Services(), fresh.Peers())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.enc.Services(), want.Services()) || got.enc.Sum() != want.Sum() {
			t.Fatalf("step %d (%+v): the table built from the one before differs from the table built from scratch:\n%s\nwant\n%s", step, b, got.enc.Services(), want.Services())
		}
		if before == nil {
			continue
		}
		// Only a task put, updated or removed touches just its service.
		touched := ""
		switch {
		case len(b.PutTasks) == 1:
			touched = b.PutTasks[0].ServiceID
		case len(b.TaskStatuses) == 1:
			touched = tasks[b.TaskStatuses[0].TaskID].ServiceID
		default:
			continue
		}
		for i, se := range got.shared.Services() {
			old := before.shared.Services()[i]
			same := len(se.Groups) == 0 || len(old.Groups) > 0 && &se.Groups[0] == &old.Groups[0]
			if se.ServiceID != touched && !same {
				t.Fatalf("step %d: service %s was computed again, though only %s changed", step, se.ServiceID, touched)
			}
		}
	}
}
