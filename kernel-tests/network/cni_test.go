//go:build linux

package networktest

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/warrenhq/warren/cni"
	"github.com/warrenhq/warren/cni/ipam"
	"github.com/warrenhq/warren/kernel-tests/ktest"
)

// TestCNIPlugin runs the real plugin binary through libcni inside a "node"
// namespace: two containers get addresses from the node subnet and ping each
// other over the bridge; CHECK notices a broken container; DEL frees and is
// idempotent.
func TestCNIPlugin(t *testing.T) {
	ktest.Root(t)
	ktest.Binary(t, "ip")
	ktest.Binary(t, "nsenter")

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin, conf, data, cache := filepath.Join(dir, "bin"), filepath.Join(dir, "conf"), filepath.Join(dir, "ipam"), filepath.Join(dir, "cache")
	if err := cni.InstallPlugin(bin, exe); err != nil {
		t.Fatal(err)
	}
	bridge := shortTag("wbr")
	nc := cni.NetConf{Bridge: bridge, Subnet: "10.42.7.0/24", ServiceCIDR: "10.43.0.0/16", DataDir: data, MTU: 1400}
	nc.DNS.Nameservers = []string{"10.42.7.1"}
	if err := cni.WriteConfList(conf, nc); err != nil {
		t.Fatal(err)
	}
	client := cni.NewClient(bin, conf)
	client.CacheDir = cache

	node := newNetns(t, "cnode")
	c1, c2 := newNetns(t, "c1"), newNetns(t, "c2")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// libcni forks the plugin from the calling thread, which WithNetNSPath has
	// locked into the node namespace: the bridge is built there, not on the host.
	inNode := func(f func() error) error {
		return ns.WithNetNSPath(nsPath(node), func(ns.NetNS) error { return f() })
	}
	var a1, a2, a2again netip.Addr
	if err := inNode(func() (err error) {
		if a1, err = client.Add(ctx, "ctr-one", nsPath(c1)); err != nil {
			return err
		}
		if a2, err = client.Add(ctx, "ctr-two", nsPath(c2)); err != nil {
			return err
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	subnet := netip.MustParsePrefix("10.42.7.0/24")
	if !subnet.Contains(a1) || !subnet.Contains(a2) || a1 == a2 || a1 == ipam.Gateway(subnet) {
		t.Fatalf("addresses %s %s", a1, a2)
	}
	if out := inNS(t, node, "ip", "-o", "addr", "show", "dev", bridge); !strings.Contains(out, "10.42.7.1/24") {
		t.Fatalf("bridge in node netns lacks the gateway: %s", out)
	}
	if _, err := ktestOutput("ip", "link", "show", bridge); err == nil {
		t.Fatalf("bridge %s leaked into the host namespace", bridge)
	}
	if out := inNS(t, node, "ip", "route", "show", "type", "unreachable"); !strings.Contains(out, "10.43.0.0/16") {
		t.Fatalf("no unreachable service route in node netns: %q", out)
	}
	if out := inNS(t, c1, "ip", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out, a1.String()+"/24") {
		t.Fatalf("c1 eth0: %s", out)
	}
	if out := inNS(t, c1, "ip", "route", "show", "default"); !strings.Contains(out, "via 10.42.7.1") {
		t.Fatalf("c1 default route: %s", out)
	}
	srv := listenIn(t, c2, netip.AddrPortFrom(a2, 0))
	eventually(t, "c1 -> c2 over the bridge", 10*time.Second, func() error { return dialFrom(c1, srv, "hello") })
	gwSrv := listenIn(t, node, netip.AddrPortFrom(netip.MustParseAddr("10.42.7.1"), 0))
	eventually(t, "c2 -> gateway", 10*time.Second, func() error { return dialFrom(c2, gwSrv, "gw") })

	if err := inNode(func() error {
		if err := client.Check(ctx, "ctr-one", nsPath(c1)); err != nil {
			return err
		}
		if err := client.Status(ctx); err != nil {
			return err
		}
		var err error
		a2again, err = client.Add(ctx, "ctr-two", nsPath(c2))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if a2again != a2 {
		t.Fatalf("repeated ADD gave %s, first %s", a2again, a2)
	}
	eventually(t, "c1 -> c2 after repeated ADD", 10*time.Second, func() error { return dialFrom(c1, srv, "again") })

	// CHECK must fail when the container's address is gone.
	inNS(t, c1, "ip", "addr", "flush", "dev", "eth0")
	if err := inNode(func() error { return client.Check(ctx, "ctr-one", nsPath(c1)) }); err == nil {
		t.Fatal("CHECK passed for a container without its address")
	}

	// Spec error codes reach the runtime: a bogus netns is code 8.
	err = inNode(func() error {
		_, err := client.Add(ctx, "ctr-bad", "/run/netns/does-not-exist-warren")
		return err
	})
	var te *types.Error
	if !errors.As(err, &te) || te.Code != types.ErrInvalidNetNS {
		t.Fatalf("ADD with missing netns: err = %v, want CNI code %d", err, types.ErrInvalidNetNS)
	}

	cfg := libcni.NewCNIConfig([]string{bin}, nil)
	vi, err := cfg.GetVersionInfo(ctx, cni.PluginType)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(vi.SupportedVersions(), ","), "1.1.0") {
		t.Fatalf("VERSION: %v", vi.SupportedVersions())
	}

	if err := inNode(func() error {
		for i := 0; i < 2; i++ { // idempotent
			if err := client.Del(ctx, "ctr-one", nsPath(c1)); err != nil {
				return err
			}
		}
		return client.Del(ctx, "never-added", "")
	}); err != nil {
		t.Fatal(err)
	}
	store, _ := ipam.Open(data, subnet)
	if _, held, _ := store.Lookup("ctr-one", "eth0"); held {
		t.Fatal("DEL left the lease")
	}
	if out := inNS(t, c1, "ip", "-o", "link"); strings.Contains(out, "eth0") {
		t.Fatalf("DEL left eth0 in the container: %s", out)
	}
	if out := inNS(t, node, "ip", "-o", "link", "show", "master", bridge); strings.Count(out, "\n") != 1 {
		t.Fatalf("bridge ports after DEL of one of two containers: %s", out)
	}
	// DEL after the container's namespace is gone.
	ktest.Run(t, "ip", "netns", "del", c2)
	if err := inNode(func() error { return client.Del(ctx, "ctr-two", nsPath(c2)) }); err != nil {
		t.Fatalf("DEL with netns gone: %v", err)
	}
	if p, _ := store.Snapshot(); len(p.Leases) != 0 {
		t.Fatalf("leases left: %v", p.Leases)
	}
}
