package apiserver

import (
	"testing"

	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/store"
)

// A create, a removal or a node update whose batch is refused because what
// it read moved in between (another service created, the leader writing
// rollout or node status) is re-read and applied, not handed to the
// operator as "retry": the T6 soak's churn saw one `service rm` in nine
// fail that way, and T1 one label update in five around failovers. A
// conflict on every attempt still ends, with 409.
func TestWritesRetryConflicts(t *testing.T) {
	c := newCluster(t)
	be := c.backend(t, "m1", true)
	srv := c.serve(t, c.newServer(t, be).Handler())
	admin := c.client(t, "admin", hostOf(srv))
	ctx := t.Context()

	// moves puts the cluster object, every service and every node back
	// unchanged, which gives each a new version: the handler's
	// expectations no longer hold when its batch arrives.
	moves := func(times int) func() {
		return func() {
			if times == 0 {
				return
			}
			times--
			v := c.st.View()
			b := &store.Batch{Cluster: v.Cluster(), PutServices: v.Services(), PutNodes: v.Nodes()}
			c.apply(t, b)
		}
	}
	for _, tc := range []struct {
		name  string
		moves int
		ok    bool
	}{{"moved once", 1, true}, {"moved four times", 4, true}, {"moved on every attempt", 100, false}} {
		t.Run(tc.name, func(t *testing.T) {
			be.mu.Lock()
			be.beforeApply = moves(tc.moves)
			be.mu.Unlock()
			_, err := admin.CreateService(ctx, webSpec("web", 0))
			if !tc.ok {
				wantErr(t, err, 409, "the object changed while the request was applied")
				return
			}
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			be.mu.Lock()
			be.beforeApply = moves(tc.moves)
			be.mu.Unlock()
			if _, err := admin.RemoveService(ctx, "web"); err != nil {
				t.Fatalf("remove: %v", err)
			}
			if _, ok := c.st.View().ServiceByName("web"); ok {
				t.Fatal("web still exists after its removal succeeded")
			}
			be.mu.Lock()
			be.beforeApply = moves(tc.moves)
			be.mu.Unlock()
			if _, err := admin.UpdateNode(ctx, "m1", client.NodeUpdate{LabelAdd: map[string]string{"site": tc.name}}); err != nil {
				t.Fatalf("node update: %v", err)
			}
			if n, _ := c.st.View().Node("m1"); n.Spec.Labels["site"] != tc.name {
				t.Fatalf("node m1 labels %v after the update succeeded", n.Spec.Labels)
			}
		})
	}
}
