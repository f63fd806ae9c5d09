package apiserver

import (
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/store"
)

// backends lists the addresses of service's backends in a's service table.
func backends(a *api.Assignments, service string) []string {
	var out []string
	for _, s := range a.Services {
		if s.ServiceID != service {
			continue
		}
		for _, g := range s.Groups {
			for _, b := range g.Backends {
				out = append(out, b.Addr)
			}
		}
	}
	return out
}

// Agents spread their watches over the managers (agent/spread.go), so a
// follower answers assignments — service table included — from its own
// store, and its blocking query wakes on its own store's writes. The
// leader's API address is unknown here, so anything forwarded would fail.
func TestFollowerServesAssignmentsFromItsStore(t *testing.T) {
	c := newCluster(t)
	follower := c.serve(t, c.newServer(t, c.backend(t, "m2", false)).Handler())
	worker := c.client(t, "worker", hostOf(follower))
	ctx := t.Context()
	running := func(id, addr string) api.Task {
		return api.Task{ID: id, ServiceID: "s1", NodeID: "w1", DesiredState: api.TaskRunning, Version: "v1",
			Status: api.TaskStatus{State: api.TaskRunning, Addr: addr}}
	}
	c.apply(t, &store.Batch{
		PutServices: []api.Service{{ID: "s1", Spec: api.ServiceSpec{Name: "web", Mode: api.ModeReplicated, Replicas: 2}, Endpoint: api.Endpoint{VIP: "10.43.0.2"}}},
		PutTasks:    []api.Task{running("t1", "10.42.1.2")},
	})
	a, err := worker.Assignments(ctx, 0, 0)
	if err != nil {
		t.Fatalf("assignments from a follower: %v", err)
	}
	if len(a.Tasks) != 1 || a.Index != c.st.View().Index() {
		t.Fatalf("follower's answer: tasks %v index %d, want t1 at %d", a.Tasks, a.Index, c.st.View().Index())
	}
	if got := backends(a, "s1"); len(got) != 1 || got[0] != "10.42.1.2" {
		t.Fatalf("follower's service table for web: backends %v, want 10.42.1.2", got)
	}
	got := make(chan *api.Assignments, 1)
	go func() {
		next, err := worker.Assignments(ctx, a.Index, time.Minute)
		if err != nil {
			t.Error(err)
		}
		got <- next
	}()
	c.apply(t, &store.Batch{PutTasks: []api.Task{running("t2", "10.42.1.3")}})
	select {
	case next := <-got:
		if next == nil || next.Index <= a.Index {
			t.Fatalf("follower's blocking query answer = %+v", next)
		}
		if b := backends(next, "s1"); len(b) != 2 {
			t.Fatalf("follower's new service table for web: backends %v, want both tasks", b)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the follower's blocking query did not return after its store moved")
	}
}
