package dataplanetest

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/warrenhq/warren/dataplane"
	"github.com/warrenhq/warren/dataplane/conformance"
	bpf "github.com/warrenhq/warren/dataplane/ebpf"
	"github.com/warrenhq/warren/kernel-tests/ktest"
)

// attached counts the programs attached directly (not inherited) to a
// cgroup for one attach type.
func attached(t *testing.T, cg string, at ebpf.AttachType) int {
	t.Helper()
	f, err := os.Open(cg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: at})
	if err != nil {
		t.Fatalf("query %s programs of %s: %v", at, cg, err)
	}
	return len(res.Programs)
}

// TestEBPFHostLBAttachesOnce: with the host's processes balanced too
// (--host-lb), the socket programs are attached at the host root only —
// the node's cgroup lies below it and inherits them — so a connect from a
// task runs each program once. An agent that attached at the node cgroup
// before (an older warren, or --host-lb=false) hands over without a gap and
// leaves nothing attached there. The "host root" is a cgroup of the test's
// own, so the machine's root is never touched.
func TestEBPFHostLBAttachesOnce(t *testing.T) {
	ktest.Root(t)
	root := newCgroup(t, "hostroot")
	node := filepath.Join(root, "node")
	if err := os.Mkdir(node, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		leaveCgroup(t)
		if err := os.Remove(node); err != nil {
			t.Errorf("remove cgroup %s: %v", node, err)
		}
	})
	pins := pinDir(t, t.Name())
	cleanupPins(t, pins)
	enterCgroup(t, node)

	vip := netip.MustParseAddr("10.43.203.1")
	port := conformance.FreePort(t)
	addr := netip.MustParseAddr("127.0.203.1")
	conformance.ListenBackend(t, dataplane.TCP, netip.AddrPortFrom(addr, port), "b1")
	cfg := &dataplane.Config{Services: []dataplane.Service{webService(vip, port,
		dataplane.Group{Version: "v1", Weight: 1, Backends: []dataplane.Backend{{ID: "b1", Addr: addr}}})}}
	progs := []ebpf.AttachType{ebpf.AttachCGroupInet4Connect, ebpf.AttachCGroupUDP4Sendmsg, ebpf.AttachCGroupUDP4Recvmsg, ebpf.AttachCgroupInet4GetPeername}

	for _, c := range []struct {
		hostLB         bool
		atNode, atRoot int
	}{
		{false, 1, 0}, // the node cgroup only
		{true, 0, 1},  // then the host root only, taking over
		{true, 0, 1},  // a restart with the same options
	} {
		d, err := bpf.New(bpf.Options{CgroupPath: node, PinDir: pins, AttachHostRoot: c.hostLB, HostRootCgroup: root})
		if err != nil {
			t.Fatalf("New (host-lb %v): %v", c.hostLB, err)
		}
		if err := d.Set(cfg); err != nil {
			t.Fatal(err)
		}
		for _, at := range progs {
			if n, m := attached(t, node, at), attached(t, root, at); n != c.atNode || m != c.atRoot {
				t.Errorf("host-lb %v: %s attached %d times at the node cgroup and %d at the root, want %d and %d", c.hostLB, at, n, m, c.atNode, c.atRoot)
			}
		}
		for _, r := range conformance.Dial(dataplane.TCP, netip.AddrPortFrom(vip, 80), 10) {
			if r.Err != nil || r.Backend != "b1" {
				t.Fatalf("host-lb %v: VIP reached %q, err %v", c.hostLB, r.Backend, r.Err)
			}
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
