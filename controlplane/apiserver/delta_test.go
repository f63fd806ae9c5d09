package apiserver

import (
	"fmt"
	"net/http"
	"reflect"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/store"
	"github.com/warrenhq/warren/controlplane/tabledelta"
)

func deltaCluster(t *testing.T) *cluster {
	c := newCluster(t)
	node := func(id, key string) api.Node {
		return api.Node{ID: id, Spec: api.NodeSpec{Role: api.RoleWorker, Availability: api.AvailabilityActive},
			Status: api.NodeStatus{State: api.NodeReady, Addr: "192.0.2." + id[1:], Hostname: id,
				Network: api.NodeNetwork{Subnet: "10.42." + id[1:] + ".0/24", WGPublicKey: key}}}
	}
	c.apply(t, &store.Batch{
		PutNodes: []api.Node{node("w1", "kw"), node("n2", "k2"), node("n3", "k3")},
		PutServices: []api.Service{
			{ID: "s1", Spec: api.ServiceSpec{Name: "web", Mode: api.ModeReplicated, Replicas: 2}, Endpoint: api.Endpoint{VIP: "10.43.0.2"}},
			{ID: "s2", Spec: api.ServiceSpec{Name: "db", Mode: api.ModeReplicated, Replicas: 1}, Endpoint: api.Endpoint{VIP: "10.43.0.3"}},
		},
		PutTasks: []api.Task{
			runningTask("t1", "s1", "w1", "10.42.1.5"), runningTask("t2", "s1", "n2", "10.42.2.5"), runningTask("t3", "s2", "n3", "10.42.3.5"),
		},
	})
	return c
}

func runningTask(id, svc, node, addr string) api.Task {
	return api.Task{ID: id, ServiceID: svc, NodeID: node, DesiredState: api.TaskRunning, Version: "v1",
		Status: api.TaskStatus{State: api.TaskRunning, Addr: addr}}
}

func setKey(t *testing.T, c *cluster, id, key string) {
	n, _ := c.st.View().Node(id)
	st := n.Status
	st.Network.WGPublicKey = key
	c.apply(t, &store.Batch{NodeStatuses: []store.NodeStatusUpdate{{NodeID: id, Status: st}}})
}

// An agent naming the table it holds gets what changed in it, and applying
// that gives, byte for byte, the table a full answer holds — the node's
// own peer entry left out even when the change is to it. Its own tasks
// come whole either way.
func TestAssignmentsDeltaAgainstTheHeldTable(t *testing.T) {
	c := deltaCluster(t)
	srv := c.serve(t, c.newServer(t, c.backend(t, "m1", true)).Handler())
	worker := c.client(t, "worker", hostOf(srv))
	ctx := t.Context()
	first, err := worker.AssignmentsFrom(ctx, 0, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	held, err := tabledelta.Hold(first.Services, first.Peers)
	if err != nil {
		t.Fatal(err)
	}
	if first.Delta != nil || len(first.Services) != 2 || len(first.Peers) != 2 || first.Table != held.Sum().String() {
		t.Fatalf("first answer: delta %v, %d services, %d peers, table %q (the node sums %s)", first.Delta, len(first.Services), len(first.Peers), first.Table, held.Sum())
	}

	for _, ch := range []struct {
		name                  string
		change                func()
		wantServices, wantPee int
	}{
		{"a backend moved", func() {
			c.apply(t, &store.Batch{PutTasks: []api.Task{runningTask("t2", "s1", "n2", "10.42.2.9")}})
		}, 1, 0},
		{"a peer's key", func() { setKey(t, c, "n2", "k2b") }, 0, 1},
		// Not in the node's table at all: nothing to send.
		{"the node's own key", func() { setKey(t, c, "w1", "kw2") }, 0, 0},
		{"only the node's own task", func() {
			c.apply(t, &store.Batch{PutTasks: []api.Task{{ID: "t9", ServiceID: "s2", NodeID: "w1", DesiredState: api.TaskRunning, Version: "v1"}}})
		}, 0, 0},
	} {
		ch.change()
		deltas0, full0 := testutil.ToFloat64(assignmentAnswers.WithLabelValues("delta")), testutil.ToFloat64(assignmentAnswers.WithLabelValues("full"))
		got, err := worker.AssignmentsFrom(ctx, first.Index, first.Table, 0)
		if err != nil {
			t.Fatal(err)
		}
		if d, f := testutil.ToFloat64(assignmentAnswers.WithLabelValues("delta"))-deltas0, testutil.ToFloat64(assignmentAnswers.WithLabelValues("full"))-full0; d != 1 || f != 0 {
			t.Errorf("%s: counted %v delta and %v full answers, want 1 and 0", ch.name, d, f)
		}
		if got.Delta == nil || got.Services != nil || got.Peers != nil {
			t.Fatalf("%s: want a delta alone, got delta %v, %d services, %d peers", ch.name, got.Delta, len(got.Services), len(got.Peers))
		}
		if len(got.Delta.Services) != ch.wantServices || len(got.Delta.Peers) != ch.wantPee {
			t.Errorf("%s: delta upserts %d services and %d peers, want %d and %d", ch.name, len(got.Delta.Services), len(got.Delta.Peers), ch.wantServices, ch.wantPee)
		}
		next, err := held.Apply(*got.Delta, "w1")
		if err != nil {
			t.Fatal(err)
		}
		full, err := worker.AssignmentsFrom(ctx, 0, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if next.Sum().String() != got.Table || got.Table != full.Table {
			t.Errorf("%s: applied table sums to %s; the answer says %s, the full answer %s", ch.name, next.Sum(), got.Table, full.Table)
		}
		if !reflect.DeepEqual(next.Services, full.Services) || !reflect.DeepEqual(next.Peers, full.Peers) {
			t.Errorf("%s: applied\n%+v\n%+v\nfull\n%+v\n%+v", ch.name, next.Services, next.Peers, full.Services, full.Peers)
		}
		if !reflect.DeepEqual(got.Tasks, full.Tasks) || got.Index != full.Index {
			t.Errorf("%s: the node's own part differs from the full answer's: %+v vs %+v", ch.name, got.Tasks, full.Tasks)
		}
		first, held = full, next
	}
}

// A base this manager does not know (too old, or a table only another
// manager computed) gets the full table, as does an agent naming none (an
// older one); a base that is no digest is refused.
func TestAssignmentsFullWithoutAKnownBase(t *testing.T) {
	c := deltaCluster(t)
	srv := c.serve(t, c.newServer(t, c.backend(t, "m1", true)).Handler())
	worker := c.client(t, "worker", hostOf(srv))
	ctx := t.Context()
	for _, base := range []string{"", "0123456789abcdef"} {
		a, err := worker.AssignmentsFrom(ctx, 0, base, 0)
		if err != nil {
			t.Fatal(err)
		}
		if a.Delta != nil || len(a.Services) != 2 || a.Table == "" {
			t.Errorf("base %q: want the full table, got delta %v and %d services", base, a.Delta, len(a.Services))
		}
	}
	_, err := worker.AssignmentsFrom(ctx, 0, "xyz", 0)
	if client.StatusOf(err) != http.StatusBadRequest {
		t.Errorf("base xyz: %v, want 400", err)
	}
}

// The cache remembers the last recentTables tables and no more, and one
// table however many indexes it stayed the same at.
func TestSharedCacheRemembersRecentTables(t *testing.T) {
	c := deltaCluster(t)
	var cache sharedCache
	_, first, err := cache.latest(c.st.View)
	if err != nil {
		t.Fatal(err)
	}
	sum := first.enc.SumFor("w1")
	c.apply(t, &store.Batch{PutTasks: []api.Task{{ID: "t9", ServiceID: "s2", NodeID: "w1", DesiredState: api.TaskRunning}}})
	if _, _, err := cache.latest(c.st.View); err != nil {
		t.Fatal(err)
	}
	if len(cache.recent) != 1 {
		t.Errorf("a change to no table added a table: %d remembered", len(cache.recent))
	}
	var sums []tabledelta.Sum
	for i := range recentTables {
		c.apply(t, &store.Batch{PutTasks: []api.Task{runningTask("t2", "s1", "n2", fmt.Sprintf("10.42.2.%d", 10+i))}})
		_, sh, err := cache.latest(c.st.View)
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, sh.enc.SumFor("w1"))
	}
	if cache.base("w1", sum) != nil {
		t.Errorf("the table %d tables back is still remembered", recentTables)
	}
	if cache.base("w1", sums[0]) == nil || cache.base("w1", sums[len(sums)-1]) == nil {
		t.Error("a table among the last recentTables is forgotten")
	}
	if len(cache.recent) != recentTables {
		t.Errorf("%d tables remembered, want %d", len(cache.recent), recentTables)
	}
}
