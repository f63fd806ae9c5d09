//go:build linux

package networktest

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/warrenhq/warren/cni"
)

// TestCrossNodePods is the whole per-node network together: two nodes (the
// namespaces of a mesh pair), each with warren-cni attaching a container to
// its own /24, and the WireGuard mesh routing between the subnets. A
// container on one node reaches a container on the other through the tunnel.
func TestCrossNodePods(t *testing.T) {
	p := newMeshPair(t, "xn")
	p.configure(51820, 51820)

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(p.dir, "bin")
	if err := cni.InstallPlugin(bin, exe); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	attach := func(node, tag string, subnet netip.Prefix) (string, netip.Addr) {
		conf := filepath.Join(p.dir, tag, "conf")
		if err := cni.WriteConfList(conf, cni.NetConf{Bridge: shortTag("wbx"), Subnet: subnet.String(), DataDir: filepath.Join(p.dir, tag, "ipam")}); err != nil {
			t.Fatal(err)
		}
		c := cni.NewClient(bin, conf)
		c.CacheDir = filepath.Join(p.dir, tag, "cache")
		ctr := newNetns(t, "x"+tag)
		var a netip.Addr
		if err := ns.WithNetNSPath(nsPath(node), func(ns.NetNS) (err error) {
			a, err = c.Add(ctx, "ctr-"+tag, nsPath(ctr))
			return err
		}); err != nil {
			t.Fatalf("ADD on node %s: %v", tag, err)
		}
		return ctr, a
	}
	ctrA, addrCA := attach(p.nsA, "a", subA)
	ctrB, addrCB := attach(p.nsB, "b", subB)
	if !subA.Contains(addrCA) || !subB.Contains(addrCB) {
		t.Fatalf("container addresses %s, %s", addrCA, addrCB)
	}
	srvB := listenIn(t, ctrB, netip.AddrPortFrom(addrCB, 0))
	eventually(t, "container on A -> container on B", 15*time.Second, func() error { return dialFrom(ctrA, srvB, "pod-to-pod") })
	srvA := listenIn(t, ctrA, netip.AddrPortFrom(addrCA, 0))
	eventually(t, "container on B -> container on A", 15*time.Second, func() error { return dialFrom(ctrB, srvA, "and back") })
	if rx := rxBytes(t, p.nsB, p.b.ifName); rx == 0 {
		t.Fatalf("no bytes through %s: traffic bypassed the mesh", p.b.ifName)
	}
}
