//go:build linux

package networktest

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/warrenhq/warren/dataplane/mesh"
	"github.com/warrenhq/warren/kernel-tests/ktest"
)

// meshPair is two namespaces joined by a veth underlay, 192.168.250.1 and .2,
// with a mesh node in each owning 10.42.1.0/24 and 10.42.2.0/24.
type meshPair struct {
	nsA, nsB     string
	vethA, vethB string
	a, b         *meshNode
	dir          string
}

var (
	underA = netip.MustParseAddr("192.168.250.1")
	underB = netip.MustParseAddr("192.168.250.2")
	subA   = netip.MustParsePrefix("10.42.1.0/24")
	subB   = netip.MustParsePrefix("10.42.2.0/24")
	addrA  = netip.MustParsePrefix("10.42.1.1/32")
	addrB  = netip.MustParsePrefix("10.42.2.1/32")
)

func newMeshPair(t *testing.T, tag string) *meshPair {
	t.Helper()
	ktest.Root(t)
	ktest.Binary(t, "ip")
	ktest.Binary(t, "nsenter")
	ktest.File(t, "/dev/net/tun", "TUN for wireguard-go")
	p := &meshPair{nsA: newNetns(t, tag+"a"), nsB: newNetns(t, tag+"b"), dir: t.TempDir()}
	p.vethA, p.vethB = shortTag("wva"), shortTag("wvb")
	ktest.Run(t, "ip", "-n", p.nsA, "link", "add", p.vethA, "type", "veth", "peer", "name", p.vethB, "netns", p.nsB)
	ktest.Run(t, "ip", "-n", p.nsA, "addr", "add", underA.String()+"/24", "dev", p.vethA)
	ktest.Run(t, "ip", "-n", p.nsB, "addr", "add", underB.String()+"/24", "dev", p.vethB)
	ktest.Run(t, "ip", "-n", p.nsA, "link", "set", p.vethA, "up")
	ktest.Run(t, "ip", "-n", p.nsB, "link", "set", p.vethB, "up")
	p.a = startMeshNode(t, p.nsA, shortTag("wga"), filepath.Join(p.dir, "a.key"), "auto")
	p.b = startMeshNode(t, p.nsB, shortTag("wgb"), filepath.Join(p.dir, "b.key"), "auto")
	return p
}

func (p *meshPair) configure(portA, portB uint16) {
	p.a.set(&mesh.Config{ListenPort: portA, Address: addrA, Peers: []mesh.Peer{
		{PublicKey: p.b.key, Endpoint: netip.AddrPortFrom(underB, portB), AllowedIPs: []netip.Prefix{subB}},
	}})
	p.b.set(&mesh.Config{ListenPort: portB, Address: addrB, Peers: []mesh.Peer{
		{PublicKey: p.a.key, Endpoint: netip.AddrPortFrom(underA, portA), AllowedIPs: []netip.Prefix{subA}},
	}})
}

// kernelWireGuard reports whether the kernel can create wireguard links.
func kernelWireGuard(t *testing.T, nsName string) bool {
	name := shortTag("wgp")
	_, err := ktestOutput("ip", "-n", nsName, "link", "add", name, "type", "wireguard")
	if err == nil {
		ktest.RunQuiet("ip", "-n", nsName, "link", "del", name)
	}
	return err == nil
}

func TestMeshOverlay(t *testing.T) {
	p := newMeshPair(t, "mesh")
	wantMode := mesh.ModeUserspace
	if kernelWireGuard(t, p.nsA) {
		wantMode = mesh.ModeKernel
	}
	if p.a.mode != wantMode || p.b.mode != wantMode {
		t.Fatalf("auto chose %s/%s, kernel probe says %s", p.a.mode, p.b.mode, wantMode)
	}
	if wantMode == mesh.ModeUserspace {
		// Forcing kernel mode where the module is missing is a typed error,
		// not a silent fallback.
		err := ns.WithNetNSPath(nsPath(p.nsA), func(ns.NetNS) error {
			m, err := mesh.New(mesh.Options{Mode: mesh.ModeKernel, IfName: shortTag("wgk"), KeyFile: filepath.Join(p.dir, "k.key")})
			if err == nil {
				m.Close()
			}
			return err
		})
		if !errors.Is(err, mesh.ErrNotSupported) {
			t.Fatalf("kernel mode without module: err = %v, want ErrNotSupported", err)
		}
	}

	p.configure(51820, 51820)
	for i := 0; i < 2; i++ { // idempotent: a second identical Set changes nothing
		p.configure(51820, 51820)
	}
	srvB := listenIn(t, p.nsB, netip.AddrPortFrom(addrB.Addr(), 0))
	eventually(t, "A -> B over the overlay", 15*time.Second, func() error { return dialFrom(p.nsA, srvB, "over-wg") })
	srvA := listenIn(t, p.nsA, netip.AddrPortFrom(addrA.Addr(), 0))
	eventually(t, "B -> A over the overlay", 15*time.Second, func() error { return dialFrom(p.nsB, srvA, "back") })
	if out := inNS(t, p.nsA, "ip", "route", "show", "dev", p.a.ifName); !strings.Contains(out, subB.String()) {
		t.Fatalf("A has no route to %s via %s: %s", subB, p.a.ifName, out)
	}
	// A route deleted by hand comes back with the next (identical) Set.
	inNS(t, p.nsA, "ip", "route", "del", subB.String(), "dev", p.a.ifName)
	p.configure(51820, 51820)
	if out := inNS(t, p.nsA, "ip", "route", "show", "dev", p.a.ifName); !strings.Contains(out, subB.String()) {
		t.Fatalf("Set did not restore the deleted route: %s", out)
	}
	// The connection went through the WireGuard interface, not around it.
	if rx := rxBytes(t, p.nsA, p.a.ifName); rx == 0 {
		t.Fatalf("no bytes received on %s", p.a.ifName)
	}

	// B moves to another port; A learns the new endpoint and converges.
	p.b.set(&mesh.Config{ListenPort: 51999, Address: addrB, Peers: []mesh.Peer{
		{PublicKey: p.a.key, Endpoint: netip.AddrPortFrom(underA, 51820), AllowedIPs: []netip.Prefix{subA}},
	}})
	p.a.set(&mesh.Config{ListenPort: 51820, Address: addrA, Peers: []mesh.Peer{
		{PublicKey: p.b.key, Endpoint: netip.AddrPortFrom(underB, 51999), AllowedIPs: []netip.Prefix{subB}},
	}})
	eventually(t, "A -> B after endpoint change", 15*time.Second, func() error { return dialFrom(p.nsA, srvB, "moved") })

	// B restarts with a new key; A replaces the peer and converges.
	p.b.stop()
	if err := os.Remove(filepath.Join(p.dir, "b.key")); err != nil {
		t.Fatal(err)
	}
	oldKey := p.b.key
	p.b = startMeshNode(t, p.nsB, p.b.ifName, filepath.Join(p.dir, "b.key"), "auto")
	if p.b.key == oldKey {
		t.Fatal("new key file produced the old key")
	}
	p.configure(51820, 51820)
	srvB = listenIn(t, p.nsB, netip.AddrPortFrom(addrB.Addr(), 0))
	eventually(t, "A -> B after rekey", 15*time.Second, func() error { return dialFrom(p.nsA, srvB, "rekeyed") })

	// Removing the peer removes its route.
	p.a.set(&mesh.Config{ListenPort: 51820, Address: addrA})
	if out := inNS(t, p.nsA, "ip", "route", "show", "dev", p.a.ifName); strings.Contains(out, subB.String()) {
		t.Fatalf("route to removed peer remains: %s", out)
	}
	if err := dialFrom(p.nsA, srvB, "gone"); err == nil {
		t.Fatal("reached B after removing it from the mesh")
	}
}

func rxBytes(t *testing.T, nsName, ifName string) uint64 {
	t.Helper()
	var links []struct {
		Stats struct {
			RX struct {
				Bytes uint64 `json:"bytes"`
			} `json:"rx"`
		} `json:"stats64"`
	}
	out := inNS(t, nsName, "ip", "-j", "-s", "link", "show", "dev", ifName)
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("parse ip -j -s link: %v: %s", err, out)
	}
	return links[0].Stats.RX.Bytes
}
