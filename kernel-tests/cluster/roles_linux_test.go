//go:build linux

package clustertest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/manager"
)

// TestPromoteDemote: `node promote` turns a worker into a raft voter
// without re-joining, and `node demote` turns it back into a worker; the
// node stays ready (and keeps its tasks) throughout.
func TestPromoteDemote(t *testing.T) {
	c := newCluster(t, 2)
	h1, h2 := c.hosts[0], c.hosts[1]
	c.init(h1)
	token := strings.TrimSpace(h1.mustCLI("cluster", "join-token", "worker", "-q"))
	c.join(h2, h1, token)
	id2 := h2.nodeID(t)

	voters := func() (int, error) {
		info, err := h1.info()
		if err != nil {
			return 0, err
		}
		n := 0
		for _, m := range info.Managers {
			if m.Voter {
				n++
			}
		}
		return n, nil
	}

	begin := time.Now()
	h1.mustCLI("node", "promote", id2)
	eventually(t, "h2 becomes a raft voter", 90*time.Second, func() error {
		n, err := voters()
		if err != nil {
			return err
		}
		if n != 2 {
			return fmt.Errorf("%d voters", n)
		}
		return nil
	})
	t.Logf("measured: node promote -> voter in %s", time.Since(begin).Round(time.Millisecond))
	c.waitReady(h2, h1, 60*time.Second)
	// h2 now serves the API itself, over its own socket.
	eventually(t, "h2 answers as a manager", 30*time.Second, func() error {
		nodes, err := h2.nodes()
		if err != nil {
			return err
		}
		if len(nodes) != 2 {
			return fmt.Errorf("%d nodes", len(nodes))
		}
		return nil
	})

	begin = time.Now()
	h1.mustCLI("node", "demote", id2)
	eventually(t, "h2 is a worker again", 90*time.Second, func() error {
		n, err := voters()
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("%d voters", n)
		}
		nodes, err := h1.nodes()
		if err != nil {
			return err
		}
		for _, nd := range nodes {
			if nd.ID == id2 && (nd.Spec.Role != api.RoleWorker || nd.Status.State != api.NodeReady) {
				return fmt.Errorf("h2 is %s/%s", nd.Spec.Role, nd.Status.State)
			}
		}
		return nil
	})
	eventually(t, "h2 runs as a worker (its identity and certificate changed)", 60*time.Second, func() error {
		id, err := manager.LoadIdentity(h2.dataDir)
		if err != nil {
			return err
		}
		if id.Role != api.RoleWorker {
			return fmt.Errorf("h2's identity says %s", id.Role)
		}
		return nil
	})
	t.Logf("measured: node demote -> worker in %s", time.Since(begin).Round(time.Millisecond))
	// Still a healthy member after it restarted as a worker.
	time.Sleep(6 * time.Second)
	if !h2.running() {
		t.Fatal("h2's warren exited after the demotion")
	}
	c.waitReady(h2, h1, 60*time.Second)
}
