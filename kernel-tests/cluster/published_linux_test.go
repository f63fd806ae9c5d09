//go:build linux

package clustertest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// TestPublishedPortFromOutside: `--port 8080:80` answers on every node's
// address for a client on another host (the routing mesh, in the kernel),
// balanced over the tasks of the whole cluster; a task on the node that
// received the connection sees the client's real address.
func TestPublishedPortFromOutside(t *testing.T) {
	c := newCluster(t, 3)
	h1, h2, outside := c.hosts[0], c.hosts[1], c.hosts[2] // outside runs no warren
	c.init(h1)
	token := strings.TrimSpace(h1.mustCLI("cluster", "join-token", "worker", "-q"))
	c.join(h2, h1, token)
	h1.mustCLI("image", "load", "-i", c.image)
	h1.mustCLI("service", "create", "web", "--image", demoRef, "--replicas", "2", "--replicas-max-per-node", "1",
		"--port", "8080:80", "--timeout", "2m")
	tasks := c.waitRunning(h1, "web", 2, 2*time.Minute, nil)
	nodeOf := map[string]string{} // task ID → node ID
	for _, tk := range tasks {
		nodeOf[short(tk.ID)] = tk.NodeID // replies name the container's hostname, the short ID
	}
	local := 0
	for _, entry := range []*host{h1, h2} {
		entryNode := entry.nodeID(t)
		seen := map[string]int{}
		for i := 0; i < 20; i++ {
			var reply demoReply
			eventually(t, fmt.Sprintf("GET %s:8080 from outside", entry.ip), 20*time.Second, func() error {
				body, err := httpGet(outside.nsPath(), "http://"+entry.ip+":8080/")
				if err != nil {
					return err
				}
				reply, err = parseDemo(body)
				return err
			})
			seen[reply.Hostname]++
			if nodeOf[reply.Hostname] == entryNode {
				local++
				if got, _, _ := strings.Cut(reply.Client, ":"); got != outside.ip {
					t.Errorf("a task on the receiving node %s saw client %s, want the outside client's %s", entry.name, reply.Client, outside.ip)
				}
			}
		}
		t.Logf("20 requests to %s:8080 from outside reached %v", entry.name, seen)
		if len(seen) != 2 {
			t.Errorf("published port on %s reached %d of the 2 tasks: %v", entry.name, len(seen), seen)
		}
		for who := range seen {
			if _, ok := nodeOf[who]; !ok {
				t.Errorf("answer from %q, which is not a task of web", who)
			}
		}
	}
	if local == 0 {
		t.Error("no request was served by a task on the node that received it; the client address check never ran")
	}
	_ = api.TaskRunning
}
