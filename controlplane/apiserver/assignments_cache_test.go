package apiserver

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/endpoints"
	"github.com/warrenhq/warren/controlplane/store"
)

// The wire form must stay api.Assignments field for field: a field added
// to one and not the other would silently vanish from every answer.
func TestAssignmentsWireHasTheFieldsOfAssignments(t *testing.T) {
	tags := func(v any) map[string]string {
		out := map[string]string{}
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			out[rt.Field(i).Name] = rt.Field(i).Tag.Get("json")
		}
		return out
	}
	head := tags(assignmentsHead{})
	// Spliced in by encodeAssignments and encodeDelta.
	head["Services"], head["Peers"], head["Delta"] = "services", "peers", "delta,omitempty"
	if a := tags(api.Assignments{}); !reflect.DeepEqual(a, head) {
		t.Fatalf("assignmentsHead fields (+ services, peers) %v differ from api.Assignments fields %v", head, a)
	}
}

// Every node's answer from the shared, pre-encoded parts decodes to what
// endpoints.ForNode computes for it alone.
func TestSharedAssignmentsEqualForNode(t *testing.T) {
	c := newCluster(t)
	ready := func(id, subnet, key string) api.Node {
		return api.Node{ID: id, Spec: api.NodeSpec{Role: api.RoleWorker, Availability: api.AvailabilityActive},
			Status: api.NodeStatus{State: api.NodeReady, Addr: "192.0.2." + id[1:], Hostname: id,
				Network: api.NodeNetwork{Subnet: subnet, WGPublicKey: key}}}
	}
	task := func(id, svc, node string, st api.TaskState) api.Task {
		return api.Task{ID: id, ServiceID: svc, NodeID: node, DesiredState: api.TaskRunning, Version: "v1",
			Status: api.TaskStatus{State: st, Addr: "10.42.1." + id[1:]}}
	}
	// A node marked down keeps its task, which is no backend: the shared
	// part reads each service's tasks from the store's index and leaves
	// it out there, ForNode from every task grouped.
	down := ready("n5", "10.42.5.0/24", "k5")
	down.Status.State = api.NodeDown
	c.apply(t, &store.Batch{
		PutNodes: []api.Node{ready("n2", "10.42.2.0/24", "k2"), ready("n3", "10.42.3.0/24", "k3"), ready("n4", "", "k4"), down},
		PutServices: []api.Service{
			{ID: "s1", Spec: api.ServiceSpec{Name: "web", Mode: api.ModeReplicated, Replicas: 2}, Endpoint: api.Endpoint{VIP: "10.43.0.2"}},
			{ID: "s2", Spec: api.ServiceSpec{Name: "db", Mode: api.ModeReplicated, Replicas: 1}, Endpoint: api.Endpoint{VIP: "10.43.0.3"}},
		},
	})
	// A task being removed is left out of its node's answer; a draining
	// one is handed over held as running (the shared part reads a node's
	// tasks from the store's index, ForNode groups them itself).
	removed := task("t5", "s1", "n2", api.TaskRunning)
	removed.DesiredState = api.TaskRemove
	draining := task("t6", "s2", "n3", api.TaskRunning)
	draining.DesiredState, draining.Drain = api.TaskShutdown, &api.Drain{Index: 1}
	c.apply(t, &store.Batch{PutTasks: []api.Task{
		task("t1", "s1", "n2", api.TaskRunning), task("t2", "s1", "n3", api.TaskRunning), task("t3", "s2", "n2", api.TaskStarting),
		removed, draining, task("t7", "s1", "n5", api.TaskRunning),
	}})
	v := c.st.View()
	var cache sharedCache
	_, sh, err := cache.latest(c.st.View)
	if err != nil {
		t.Fatal(err)
	}
	var cl api.Cluster
	if x := v.Cluster(); x != nil {
		cl = *x
	}
	view := endpoints.ClusterView{Index: v.Index(), Cluster: cl, Nodes: v.Nodes(), Services: v.Services(), Tasks: v.Tasks()}
	for _, id := range []string{"m1", "w1", "n2", "n3", "n4", "n5", "unknown"} {
		want := endpoints.ForNode(id, view)
		b, err := encodeAssignments(sh.shared.Header(id), sh.services(), sh.enc.PeersFor(id))
		if err != nil {
			t.Fatal(err)
		}
		var got api.Assignments
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%s: %v\n%s", id, err, b)
		}
		wb, _ := json.Marshal(want)
		var wantRT api.Assignments
		_ = json.Unmarshal(wb, &wantRT) // compare as the agent sees both
		if !reflect.DeepEqual(got, wantRT) {
			t.Errorf("node %s: shared answer\n%s\nwant\n%s", id, b, wb)
		}
		for _, tk := range got.Tasks {
			if tk.ID == "t5" {
				t.Errorf("node %s was handed the task being removed", id)
			}
			if tk.ID == "t6" && tk.DesiredState != api.TaskRunning {
				t.Errorf("node %s was handed the draining task as %s, want held as running", id, tk.DesiredState)
			}
		}
		if id == "n3" && len(got.Tasks) != 2 {
			t.Errorf("n3 was handed %d tasks, want t2 and the draining t6", len(got.Tasks))
		}
		for _, se := range got.Services {
			for _, g := range se.Groups {
				for _, b := range g.Backends {
					if b.Addr == "10.42.1.7" {
						t.Errorf("node %s: the task on the down node is a backend of %s", id, se.Name)
					}
				}
			}
		}
		for _, p := range got.Peers {
			if p.NodeID == id {
				t.Errorf("node %s is its own peer", id)
			}
		}
	}
	if _, again, _ := cache.latest(c.st.View); again != sh {
		t.Error("a second node at the same index recomputed the shared part")
	}
	c.apply(t, &store.Batch{PutTasks: []api.Task{task("t4", "s2", "n3", api.TaskRunning)}})
	nv, next, _ := cache.latest(c.st.View)
	if next == sh || next.shared.Index() != c.st.View().Index() || nv.Index() != next.shared.Index() {
		t.Error("a newer index was answered from the old shared part, or with a view of another index")
	}
}
