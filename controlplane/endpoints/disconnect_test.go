package endpoints

import (
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// A task on a node marked down is in no table (nobody can reach it; its
// node, back, is no longer down) but still in its node's assignments,
// desired running; each node gets the stop-after of the services it runs.
func TestDownNodeTasksAndStopAfter(t *testing.T) {
	web := api.Service{ID: "web", Spec: api.ServiceSpec{Name: "web", Disconnect: &api.DisconnectPolicy{StopAfter: api.Duration(time.Hour)}}}
	db := api.Service{ID: "db", Spec: api.ServiceSpec{Name: "db"}}
	run := func(id, svc, node, addr string) api.Task {
		return api.Task{ID: id, ServiceID: svc, NodeID: node, Version: "v1", DesiredState: api.TaskRunning,
			Status: api.TaskStatus{State: api.TaskRunning, Addr: addr}}
	}
	view := ClusterView{Index: 3,
		Nodes:    []api.Node{{ID: "n1", Status: api.NodeStatus{State: api.NodeReady}}, {ID: "n2", Status: api.NodeStatus{State: api.NodeDown}}},
		Services: []api.Service{web, db},
		Tasks:    []api.Task{run("a", "web", "n1", "10.42.1.2"), run("b", "web", "n2", "10.42.2.2"), run("c", "db", "n1", "10.42.1.3")}}
	backends := func(a api.Assignments) map[string]bool {
		out := map[string]bool{}
		for _, s := range a.Services {
			for _, g := range s.Groups {
				for _, b := range g.Backends {
					out[b.TaskID] = true
				}
			}
		}
		return out
	}
	n1 := ForNode("n1", view)
	if be := backends(n1); !be["a"] || be["b"] || !be["c"] {
		t.Errorf("n1's backends %v, want a and c, not b on the down node", be)
	}
	if len(n1.StopAfter) != 1 || n1.StopAfter["web"] != api.Duration(time.Hour) {
		t.Errorf("n1 stop-after %v, want web's hour only", n1.StopAfter)
	}
	n2 := ForNode("n2", view)
	if len(n2.Tasks) != 1 || n2.Tasks[0].ID != "b" || n2.Tasks[0].DesiredState != api.TaskRunning {
		t.Errorf("n2's tasks %+v, want b desired running", n2.Tasks)
	}
}
