package planner

import (
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/endpoints"
	"github.com/warrenhq/warren/controlplane/store"
)

// TestPlanDrainsThroughTheStore: a scale down against the real FSM. The
// stopped task stays with its node as running while every node's table
// lists it terminating, waits for the index the FSM gave the stop, and is
// handed to its node as removed once both nodes acked that index.
func TestPlanDrainsThroughTheStore(t *testing.T) {
	web := service("web", 2, api.UpdateConfig{})
	f := newFixture(t, &store.Batch{Cluster: cluster(), PutNodes: []api.Node{worker("n1", now), worker("n2", now)},
		PutServices: []api.Service{web},
		PutTasks:    []api.Task{runningTask("a", web, 1, "n1"), runningTask("b", web, 2, "n2")}})
	f.hbs = map[string]time.Time{"n1": now, "n2": now}
	acks := map[string]api.TableAck{}
	plan := func(at time.Time) Result {
		t.Helper()
		s := f.snapshot()
		s.Acks = acks
		res := Plan(s, at, f.rnd, f.ids)
		if res.Batch != nil {
			f.apply(res.Batch)
		}
		return res
	}
	forNode := func(node string) api.Assignments {
		v := f.st.View()
		return endpoints.ForNode(node, endpoints.ClusterView{Index: v.Index(), Cluster: *v.Cluster(), Nodes: v.Nodes(), Services: v.Services(), Tasks: v.Tasks()})
	}
	task := func(id string) api.Task {
		x, ok := f.st.View().Task(id)
		if !ok {
			t.Fatalf("no task %s", id)
		}
		return x
	}

	web.Spec.Replicas = 1
	web.SpecVersion++
	f.apply(&store.Batch{PutServices: []api.Service{web}})
	mustBatch(t, plan(now))
	stopIndex := f.st.Index()
	b := task("b")
	if b.DesiredState != api.TaskRemove || b.Drain == nil {
		t.Fatalf("scale down left b %s with drain %+v", b.DesiredState, b.Drain)
	}
	a2 := forNode("n2")
	if len(a2.Tasks) != 1 || a2.Tasks[0].ID != "b" || a2.Tasks[0].DesiredState != api.TaskRunning {
		t.Fatalf("n2's tasks while b drains: %+v", a2.Tasks)
	}
	for _, node := range []string{"n1", "n2"} {
		for _, be := range forNode(node).Services[0].Groups[0].Backends {
			if be.TaskID == "b" && be.Health != api.BackendTerminating {
				t.Fatalf("%s's table has b %s, want terminating", node, be.Health)
			}
		}
	}

	// The index is recorded; n2 acks it, n1 is behind.
	plan(now.Add(time.Millisecond))
	if d := task("b").Drain; d.Index != stopIndex || !d.Done.IsZero() {
		t.Fatalf("drain %+v, want index %d and waiting", d, stopIndex)
	}
	acks["n2"] = api.TableAck{Index: f.st.Index()}
	acks["n1"] = api.TableAck{Index: stopIndex - 1}
	if res := plan(now.Add(2 * time.Millisecond)); res.Batch != nil {
		t.Fatalf("wrote %+v with n1 behind", res.Batch)
	}
	acks["n1"] = api.TableAck{Index: stopIndex}
	mustBatch(t, plan(now.Add(3*time.Millisecond)))
	if d := task("b").Drain; d.Done.IsZero() {
		t.Fatalf("not released with both acks: %+v", d)
	}
	if ts := forNode("n2").Tasks; len(ts) != 0 {
		t.Fatalf("n2 still holds %+v after the release", ts)
	}
}
