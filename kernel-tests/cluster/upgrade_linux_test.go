//go:build linux

package clustertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// oldBinary builds warren as of the revision an upgrade starts from: the
// merge base of HEAD with main, or HEAD's parent when HEAD is on main
// (WARREN_UPGRADE_FROM names another revision). It is built from a git
// worktree in a temporary directory, as a release would be.
func oldBinary(t *testing.T) (bin, rev string) {
	t.Helper()
	ktestBinary(t, "git")
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("git", append([]string{"-C", root}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	rev = os.Getenv("WARREN_UPGRADE_FROM")
	if rev == "" {
		head := git("rev-parse", "HEAD")
		rev = git("merge-base", "HEAD", "main")
		if rev == head {
			rev = git("rev-parse", "HEAD~1")
		}
	}
	rev = git("rev-parse", "--short", rev)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	git("worktree", "add", "--detach", src, rev)
	t.Cleanup(func() { _ = exec.Command("git", "-C", root, "worktree", "remove", "--force", src).Run() })
	bin = filepath.Join(dir, "warren-"+rev)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.version="+rev, "-o", bin, "./cmd/warren")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build warren %s: %v\n%s", rev, err, out)
	}
	return bin, rev
}

// TestUpgradeKeepsTraffic starts a cluster (a manager and a worker) with the
// binary of the previous revision, runs a published service under load
// from a third host and through the VIP from inside a task, then replaces
// the binary node by node — the manager first — restarting each: no failed
// request, the same tasks with the same PIDs and no restart, and the new
// version reads the raft state the old one wrote.
func TestUpgradeKeepsTraffic(t *testing.T) {
	oldBin, rev := oldBinary(t)
	c := newCluster(t, 3)
	newBin := c.bin
	c.bin = oldBin
	h1, h2, outside := c.hosts[0], c.hosts[1], c.hosts[2]
	c.init(h1)
	token := strings.TrimSpace(h1.mustCLI("cluster", "join-token", "worker", "-q"))
	c.join(h2, h1, token)
	h1.mustCLI("image", "load", "-i", c.image)
	h1.mustCLI("service", "create", "web", "--image", demoRef, "--replicas", "4", "--replicas-max-per-node", "2",
		"--port", "8080:80", "--health-http", "/healthz", "--health-interval", "2s", "--health-timeout", "1s", "--timeout", "2m")
	before := c.waitRunning(h1, "web", 4, 2*time.Minute, func(ts []api.Task) error {
		for _, tk := range ts {
			if tk.Status.Health != api.HealthHealthy {
				return fmt.Errorf("task %s is %s", short(tk.ID), tk.Status.Health)
			}
		}
		return nil
	})
	svc, err := h1.service("web")
	if err != nil {
		t.Fatal(err)
	}
	specBefore := svc.Spec
	t.Logf("cluster running %s (old) with 4 replicas of web", rev)

	var onH1 api.Task
	for _, tk := range before {
		if tk.NodeID == h1.nodeID(t) {
			onH1 = tk
		}
	}
	if onH1.ID == "" {
		t.Fatalf("no web task on h1:%s", describeTasks(before))
	}
	i := 0
	pub := newRequestLoop(func() error {
		i++
		to := []*host{h1, h2}[i%2]
		_, err := httpGet(outside.nsPath(), "http://"+to.ip+":8080/")
		return err
	})
	defer pub.stop()
	vipLoop := startTaskVIPLoop(t, h1, onH1.Status.PID, svc.Endpoint.VIP)
	defer vipLoop.stop()
	// Names too: the old release's DNS device hands the port over to the
	// new binary's device process.
	var dnsAddr string
	nodes, err := h1.nodes()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.ID == onH1.NodeID {
			dnsAddr = n.Status.Network.DNSAddr
		}
	}
	dnsLoop := startTaskDNSLoop(t, h1, onH1.Status.PID, dnsAddr, "web.warren.local", svc.Endpoint.VIP)
	defer dnsLoop.stop()
	time.Sleep(3 * time.Second)

	c.bin = newBin
	for _, h := range []*host{h1, h2} { // the manager first
		h.stop(syscall.SIGTERM)
		h.start(h.args...)
		c.waitReady(h, h1, 90*time.Second)
		eventually(t, h.name+" runs the new binary", 30*time.Second, func() error {
			nodes, err := h1.nodes()
			if err != nil {
				return err
			}
			for _, n := range nodes {
				if n.Status.Addr == h.ip && n.Status.Version == rev {
					return fmt.Errorf("%s still reports version %s", h.name, rev)
				}
			}
			return nil
		})
		time.Sleep(10 * time.Second) // under load while the new binary settles
	}
	pub.stop()
	vipLoop.stop()
	dnsLoop.stop()
	pc, vc := pub.counts(), vipLoop.counts()
	if dc := dnsLoop.counts(); dc.total == 0 || dc.failed > 0 {
		t.Errorf("DNS from a task during the upgrade: %d lookups, %d failed; first: %s", dc.total, dc.failed, dnsLoop.firstFailure(0))
	} else {
		t.Logf("measured: DNS from a task during the upgrade: %d lookups, 0 failed", dc.total)
	}
	t.Logf("measured: upgrade from %s, node by node: published port %d requests, %d failed; VIP from a task %d requests, %d failed", rev, pc.total, pc.failed, vc.total, vc.failed)
	if pc.total == 0 || vc.total == 0 {
		t.Errorf("a request loop made no requests (published %d, VIP %d)", pc.total, vc.total)
	}
	if pc.failed > 0 {
		t.Errorf("%d requests through the published port failed; first: %s", pc.failed, pub.firstFailure(0))
	}
	if vc.failed > 0 {
		t.Errorf("%d requests through the VIP failed; first: %s", vc.failed, vipLoop.firstFailure(0))
	}

	// The state the old version wrote, read by the new one.
	svc, err = h1.service("web")
	if err != nil {
		t.Fatalf("new version cannot read the service the old one created: %v", err)
	}
	if !reflect.DeepEqual(svc.Spec, specBefore) {
		t.Errorf("service spec changed across the upgrade:\nbefore %+v\nafter  %+v", specBefore, svc.Spec)
	}
	all, err := h1.tasks("web")
	if err != nil {
		t.Fatal(err)
	}
	pids := map[string]int{}
	for _, tk := range before {
		pids[tk.ID] = tk.Status.PID
	}
	after := runningTasks(all)
	if len(after) != len(before) || len(all) != len(before) {
		t.Fatalf("after the upgrade %d tasks (%d running), want the same %d:%s", len(all), len(after), len(before), describeTasks(all))
	}
	for _, tk := range after {
		if pid, ok := pids[tk.ID]; !ok || pid != tk.Status.PID || tk.Status.Restarts != 0 {
			t.Errorf("task %s pid %d restarts %d, want the same task with pid %d and 0 restarts", short(tk.ID), tk.Status.PID, tk.Status.Restarts, pid)
		}
	}
	// And the new version writes to it (down: two nodes hold at most four).
	h1.mustCLI("service", "scale", "web=3")
	c.waitRunning(h1, "web", 3, 2*time.Minute, nil)
}
