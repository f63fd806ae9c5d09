//go:build linux

package clustertest

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenhq/warren/cni"
	"github.com/warrenhq/warren/controlplane/api"
)

// TestContainerChurnKeepsGateway: containers come and go on a node (20
// created, 20 removed) while a task that stays resolves names through the
// node's DNS at the bridge address and reaches a task on another node by
// address — both through its gateway. Linux would give a bridge without a
// MAC of its own the lowest MAC among its ports and change it as ports come
// and go, leaving the surviving task with a stale gateway MAC; nothing may
// fail. The bridge's MAC is the one derived from the node and never changes.
func TestContainerChurnKeepsGateway(t *testing.T) {
	c := newCluster(t, 2)
	h1, h2 := c.hosts[0], c.hosts[1]
	c.init(h1)
	token := strings.TrimSpace(h1.mustCLI("cluster", "join-token", "worker", "-q"))
	c.join(h2, h1, token)
	h1.mustCLI("image", "load", "-i", c.image)
	h1.mustCLI("service", "create", "web", "--image", demoRef, "--replicas", "2", "--replicas-max-per-node", "1", "--timeout", "2m")
	tasks := c.waitRunning(h1, "web", 2, 2*time.Minute, nil)
	id1 := h1.nodeID(t)
	var stay, remote api.Task
	for _, tk := range tasks {
		if tk.NodeID == id1 {
			stay = tk
		} else {
			remote = tk
		}
	}
	if stay.ID == "" || remote.ID == "" {
		t.Fatalf("want one web task per node:%s", describeTasks(tasks))
	}
	var gw, subnet string
	nodes, err := h1.nodes()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.ID == id1 {
			gw, subnet = n.Status.Network.DNSAddr, n.Status.Network.Subnet
		}
	}
	prefix, err := netip.ParsePrefix(subnet)
	if err != nil || gw == "" {
		t.Fatalf("node %s: subnet %q dns %q", short(id1), subnet, gw)
	}
	wantMAC := cni.BridgeMAC(h1.bridge, prefix).String()
	bridgeMAC := func() string {
		// ip, not /sys/class/net: nsenter --net keeps the host's /sys.
		out, err := exec.Command("ip", "-n", h1.netns, "-o", "link", "show", "dev", h1.bridge).CombinedOutput()
		if err != nil {
			t.Fatalf("bridge address: %v %s", err, out)
		}
		f := strings.Fields(string(out))
		for i := range f {
			if f[i] == "link/ether" && i+1 < len(f) {
				return f[i+1]
			}
		}
		t.Fatalf("no link/ether in %q", out)
		return ""
	}
	if got := bridgeMAC(); got != wantMAC {
		// Go on: the churn below shows what a borrowed MAC costs.
		t.Errorf("bridge %s has MAC %s, want its own %s", h1.bridge, got, wantMAC)
	}

	// The surviving task's view: its network namespace, the host's tools.
	out := filepath.Join(c.dir, "churn-loop.out")
	stop := filepath.Join(c.dir, "churn-loop.stop")
	script := fmt.Sprintf(`while [ ! -e %[1]s ]; do
  a=$(dig @%[2]s +short +time=1 +tries=1 web.warren.local)
  case "$a" in 10.*) echo "ok dns" ;; *) echo "fail dns $(date +%%T.%%N) [$a]" ;; esac
  if curl -s -o /dev/null --max-time 2 http://%[3]s/; then echo "ok remote"; else echo "fail remote $(date +%%T.%%N) $?"; fi
  sleep 0.05
done >> %[4]s`, stop, gw, remote.Status.Addr, out)
	loop := exec.Command("nsenter", fmt.Sprintf("--net=/proc/%d/ns/net", stay.Status.PID), "--", "sh", "-c", script)
	loop.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := loop.Start(); err != nil {
		t.Fatal(err)
	}
	loopDone := make(chan struct{})
	go func() { _ = loop.Wait(); close(loopDone) }()
	t.Cleanup(func() {
		_ = os.WriteFile(stop, nil, 0o600)
		select {
		case <-loopDone:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-loop.Process.Pid, syscall.SIGKILL)
		}
	})

	// 4 rounds of 5 containers on h1: created, running, removed.
	h1.mustCLI("service", "create", "churn", "--image", demoRef, "--replicas", "0", "--constraint", "node.id=="+id1, "--timeout", "2m")
	for round := 1; round <= 4; round++ {
		h1.mustCLI("service", "scale", "churn=5")
		c.waitRunning(h1, "churn", 5, 2*time.Minute, nil)
		h1.mustCLI("service", "scale", "churn=0")
		eventually(t, "churn containers removed", time.Minute, func() error {
			ts, err := h1.tasks("churn")
			if err != nil {
				return err
			}
			for _, tk := range ts {
				if !tk.Status.State.Terminal() {
					return fmt.Errorf("task %s still %s", short(tk.ID), tk.Status.State)
				}
			}
			return nil
		})
		if got := bridgeMAC(); got != wantMAC {
			t.Errorf("round %d: bridge MAC %s, want %s throughout", round, got, wantMAC)
		}
	}
	time.Sleep(2 * time.Second) // a last round of the loop after the final removal
	_ = os.WriteFile(stop, nil, 0o600)
	<-loopDone

	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var total, failed int
	var fails []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		total++
		if strings.HasPrefix(line, "fail") {
			failed++
			if len(fails) < 5 {
				fails = append(fails, line)
			}
		}
	}
	t.Logf("measured: 20 containers created and removed on %s; the surviving task made %d DNS lookups and remote requests through its gateway, %d failed", h1.name, total, failed)
	if total == 0 {
		t.Fatal("the loop in the surviving task made no requests")
	}
	if failed > 0 {
		t.Errorf("%d of %d lookups/requests through the gateway failed during container churn; first: %v", failed, total, fails)
	}
}
