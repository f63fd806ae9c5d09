package apiserver

import (
	"testing"

	"github.com/warrenhq/warren/controlplane/store"
)

// A create or a removal whose batch is refused because what it read moved
// in between (another service created, the leader writing rollout status)
// is re-read and applied, not handed to the operator as "retry": the T6
// soak's churn saw one `service rm` in nine fail that way. A conflict on
// every attempt still ends, with 409.
func TestCreateAndRemoveRetryConflicts(t *testing.T) {
	c := newCluster(t)
	be := c.backend(t, "m1", true)
	srv := c.serve(t, c.newServer(t, be).Handler())
	admin := c.client(t, "admin", hostOf(srv))
	ctx := t.Context()

	// moves puts the cluster object and every service back unchanged,
	// which gives each a new version: the handler's expectations no
	// longer hold when its batch arrives.
	moves := func(times int) func() {
		return func() {
			if times == 0 {
				return
			}
			times--
			v := c.st.View()
			b := &store.Batch{Cluster: v.Cluster(), PutServices: v.Services()}
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
		})
	}
}
