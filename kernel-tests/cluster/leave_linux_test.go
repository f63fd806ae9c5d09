//go:build linux

package clustertest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLeaveLeavesNothing: after `cluster leave --force --remove-images` on a
// one-node cluster that ran a published service, nothing Warren created is
// left: no bpffs dir, no cgroup of the node under any hierarchy, no route or
// link in the host's network namespace but its own uplink, no firewall rule,
// no containerd namespace, no process of the node (the DNS device); and the
// command said what it removed.
func TestLeaveLeavesNothing(t *testing.T) {
	ctr := ktestBinary(t, "ctr")
	c := newCluster(t, 1)
	h := c.hosts[0]
	ns := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("nsenter", append([]string{"--net=" + h.nsPath(), "--"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	firewall := func() string {
		var keep []string
		for _, line := range strings.Split(ns("iptables-save"), "\n") {
			if !strings.HasPrefix(line, "#") {
				keep = append(keep, line)
			}
		}
		return strings.Join(keep, "\n")
	}
	fwBefore := firewall() // before warren ever ran here
	c.init(h)
	deployWeb(t, h, 2)
	c.waitRunning(h, "web", 2, 2*time.Minute, nil)
	nodeID := h.nodeID(t)
	pins := filepath.Join("/sys/fs/bpf/warren", nodeID)
	if _, err := os.Stat(pins); err != nil {
		t.Fatalf("setup: no pins at %s: %v", pins, err)
	}
	if !strings.Contains(ns("ip", "route", "show", "table", "all"), "unreachable 10.43.0.0/16") {
		t.Fatal("setup: no unreachable route for the service range")
	}

	out := ns(c.bin, "--data-dir", h.dataDir, "cluster", "leave", "--force", "--remove-images",
		"--containerd", h.ctd.Socket, "--containerd-namespace", h.ctdNS, "--cgroup-parent", h.cgroup,
		"--bridge", h.bridge, "--wireguard-interface", h.wg)
	t.Logf("cluster leave said:\n%s", out)
	eventually(t, "the daemon exited", 30*time.Second, func() error {
		if h.running() {
			return os.ErrExist
		}
		return nil
	})
	for _, want := range []string{"removed image", "removed containerd namespace " + h.ctdNS, "removed link " + h.bridge, "route unreachable 10.43.0.0/16", "removed dns device", "left the cluster"} {
		if !strings.Contains(out, want) {
			t.Errorf("leave output does not say %q", want)
		}
	}

	if _, err := os.Stat(pins); !os.IsNotExist(err) {
		t.Errorf("bpffs: %s still there (%v)", pins, err)
	}
	if entries, err := os.ReadDir("/sys/fs/bpf/warren"); err == nil && len(entries) == 0 {
		t.Error("bpffs: an empty /sys/fs/bpf/warren is left")
	}
	for _, root := range cgroupMounts() {
		if _, err := os.Stat(filepath.Join(root, h.cgroup)); !os.IsNotExist(err) {
			t.Errorf("cgroup %s still there (%v)", filepath.Join(root, h.cgroup), err)
		}
	}
	if routes := ns("ip", "route", "show", "table", "all"); strings.Contains(routes, "10.43.") || strings.Contains(routes, "10.42.") {
		t.Errorf("routes of the cluster left:\n%s", routes)
	}
	var links []string
	for _, line := range strings.Split(strings.TrimSpace(ns("ip", "-o", "link", "show")), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if name != "lo" && name != "eth0" {
				links = append(links, name)
			}
		}
	}
	if len(links) > 0 {
		t.Errorf("links left in the host: %v", links)
	}
	if fw := firewall(); fw != fwBefore || strings.Contains(strings.ToLower(fw), "warren") {
		t.Errorf("firewall rules changed or mention warren:\n%s", fw)
	}
	nss, err := exec.Command(ctr, "--address", h.ctd.Socket, "namespaces", "ls", "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("ctr namespaces ls: %v\n%s", err, nss)
	}
	for _, n := range strings.Fields(string(nss)) {
		if n == h.ctdNS {
			t.Errorf("containerd namespace %s still there", h.ctdNS)
		}
	}
	if _, err := os.Stat(h.dataDir); !os.IsNotExist(err) {
		t.Errorf("data dir %s still there (%v)", h.dataDir, err)
	}
	// The device processes that outlive a daemon restart end with the node.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), h.dataDir) {
			t.Errorf("process %s still runs for the node: %q", filepath.Base(filepath.Dir(p)), strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
}
