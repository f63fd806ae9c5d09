//go:build linux

package clustertest

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/kernel-tests/ktest"
)

// runningPIDs lists the PIDs of the RUNNING containerd tasks of h's node,
// straight from its containerd: what really runs, whatever the managers think.
func (h *host) runningPIDs(t *testing.T) []int {
	t.Helper()
	out, err := exec.Command("ctr", "--address", h.ctd.Socket, "-n", h.ctdNS, "tasks", "ls").CombinedOutput()
	if err != nil {
		t.Fatalf("ctr tasks ls on %s: %v\n%s", h.name, err, out)
	}
	var pids []int
	for _, line := range strings.Split(string(out), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) == 3 && f[2] == "RUNNING" {
			pid, _ := strconv.Atoi(f[1])
			pids = append(pids, pid)
		}
	}
	return pids
}

func (h *host) iptables(t *testing.T, args ...string) {
	t.Helper()
	ktest.Run(t, "nsenter", append([]string{"--net=" + h.nsPath(), "--", "iptables"}, args...)...)
}

// TestNodeCutOff is the edge site's promise: a worker cut off from its
// manager keeps its tasks running, restarts a crashed one by its restart
// policy, brings its tasks back after a "reboot" while still cut off, and
// after the cut converges with exactly the wanted number of replicas.
func TestNodeCutOff(t *testing.T) {
	ktest.Binary(t, "iptables")
	ktest.Binary(t, "ctr")
	c := newCluster(t, 2)
	h1, h2 := c.hosts[0], c.hosts[1]
	c.init(h1, "--node-down-grace", "5s")
	token := strings.TrimSpace(h1.mustCLI("cluster", "join-token", "worker", "-q"))
	c.join(h2, h1, token)
	h1.mustCLI("image", "load", "-i", c.image)
	h1.mustCLI("service", "create", "web", "--image", demoRef, "--replicas", "2",
		"--constraint", "node.role==worker", "--restart-delay", "100ms", "--timeout", "2m")
	c.waitRunning(h1, "web", 2, 2*time.Minute, nil)
	t.Cleanup(func() {
		if t.Failed() {
			out, err := h1.cli("service", "ps", "--all", "web")
			t.Logf("service ps --all web: %v\n%s", err, out)
		}
	})
	if got := len(h2.runningPIDs(t)); got != 2 {
		t.Fatalf("h2 runs %d containers before the cut, want 2", got)
	}

	// Cut h2 off from the manager in both directions.
	h2.iptables(t, "-I", "INPUT", "-s", h1.ip, "-j", "DROP")
	h2.iptables(t, "-I", "OUTPUT", "-d", h1.ip, "-j", "DROP")
	cut := time.Now()
	eventually(t, "the manager marks h2 down", 60*time.Second, func() error {
		nodes, err := h1.nodes()
		if err != nil {
			return err
		}
		for _, n := range nodes {
			if n.Status.Addr == h2.ip && n.Status.State == api.NodeDown {
				return nil
			}
		}
		return fmt.Errorf("h2 not down yet")
	})
	t.Logf("measured: h2 marked down %s after the cut", time.Since(cut).Round(time.Millisecond))

	// A crash during the cut: the node restarts it by itself.
	pids := h2.runningPIDs(t)
	if len(pids) != 2 {
		t.Fatalf("h2 runs %d containers during the cut, want 2 (tasks must keep running)", len(pids))
	}
	killed := pids[0]
	if err := syscall.Kill(killed, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	crashed := time.Now()
	eventually(t, "the crashed task restarted while cut off", 30*time.Second, func() error {
		now := h2.runningPIDs(t)
		for _, p := range now {
			if p == killed {
				return fmt.Errorf("pid %d still listed", killed)
			}
		}
		if len(now) != 2 {
			return fmt.Errorf("%d running", len(now))
		}
		return nil
	})
	t.Logf("measured: restart while cut off %s", time.Since(crashed).Round(time.Millisecond))

	// A "reboot" while still cut off: warren and every task process die;
	// warren started again with the same data dir brings the tasks back
	// from its local cache.
	h2.stop(syscall.SIGKILL)
	for _, p := range h2.runningPIDs(t) {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	eventually(t, "tasks dead after the simulated reboot", 20*time.Second, func() error {
		if n := len(h2.runningPIDs(t)); n != 0 {
			return fmt.Errorf("%d still running", n)
		}
		return nil
	})
	h2.start(h2.args...)
	eventually(t, "tasks back after the reboot, still cut off", 60*time.Second, func() error {
		if n := len(h2.runningPIDs(t)); n != 2 {
			return fmt.Errorf("%d running", n)
		}
		return nil
	})

	// Reconnect: h2 converges with the managers' decisions, and no task runs
	// twice — exactly two replicas, on the manager's books and in containerd.
	h2.iptables(t, "-D", "INPUT", "-s", h1.ip, "-j", "DROP")
	h2.iptables(t, "-D", "OUTPUT", "-d", h1.ip, "-j", "DROP")
	healed := time.Now()
	c.waitReady(h2, h1, 60*time.Second)
	c.waitRunning(h1, "web", 2, 2*time.Minute, func(run []api.Task) error {
		if n := len(h2.runningPIDs(t)); n != 2 {
			return fmt.Errorf("h2's containerd runs %d containers", n)
		}
		return nil
	})
	t.Logf("measured: converged %s after the cut healed", time.Since(healed).Round(time.Millisecond))
	// Stay converged: no late duplicate.
	time.Sleep(3 * time.Second)
	if n := len(h2.runningPIDs(t)); n != 2 {
		t.Fatalf("h2's containerd runs %d containers after convergence, want 2", n)
	}
}
