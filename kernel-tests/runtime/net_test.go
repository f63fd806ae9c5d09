//go:build linux

package runtimetest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// testNet is a tiny runtime.Network: a bridge in the host namespace with
// 10.199.N.1/24 and one veth per task. It stands in for cni/ so these tests
// do not depend on another package's progress.
type testNet struct {
	bridge  *netlink.Bridge
	prefix  netip.Prefix
	gateway netip.Addr
	tag     int

	mu    sync.Mutex
	next  netip.Addr
	seq   int
	veths map[string]string // container ID → host veth name
	addrs map[string]netip.Addr
}

func newTestNet(t *testing.T) *testNet {
	t.Helper()
	tag := os.Getpid() % 10000
	n := 20 + os.Getpid()%200
	prefix := netip.MustParsePrefix(fmt.Sprintf("10.199.%d.0/24", n))
	gw := prefix.Addr().Next()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("wrtb%d", tag)}}
	if err := netlink.LinkAdd(br); err != nil {
		t.Fatalf("add bridge: %v", err)
	}
	tn := &testNet{bridge: br, prefix: prefix, gateway: gw, tag: tag, next: gw.Next(),
		veths: map[string]string{}, addrs: map[string]netip.Addr{}}
	t.Cleanup(func() {
		tn.mu.Lock()
		for _, v := range tn.veths {
			if l, err := netlink.LinkByName(v); err == nil {
				_ = netlink.LinkDel(l)
			}
		}
		tn.mu.Unlock()
		_ = netlink.LinkDel(br)
	})
	if err := netlink.AddrAdd(br, &netlink.Addr{IPNet: &net.IPNet{IP: gw.AsSlice(), Mask: net.CIDRMask(24, 32)}}); err != nil {
		t.Fatalf("bridge addr: %v", err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		t.Fatalf("bridge up: %v", err)
	}
	return tn
}

func (n *testNet) Attach(_ context.Context, id, nsPath string) (netip.Addr, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	// Every attach gets a fresh address, as an IPAM that released the old
	// one on Detach would; reusing it would leave the host's neighbour
	// entry pointing at the dead veth's MAC for seconds.
	if v, ok := n.veths[id]; ok {
		if l, err := netlink.LinkByName(v); err == nil {
			_ = netlink.LinkDel(l)
		}
	}
	addr := n.next
	n.next = n.next.Next()
	n.seq++
	host := fmt.Sprintf("wrv%d_%d", n.tag, n.seq)
	peer := fmt.Sprintf("wrp%d_%d", n.tag, n.seq)
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: host, MasterIndex: n.bridge.Index}, PeerName: peer}
	if err := netlink.LinkAdd(v); err != nil {
		return netip.Addr{}, fmt.Errorf("add veth: %w", err)
	}
	n.veths[id] = host
	n.addrs[id] = addr
	if err := netlink.LinkSetUp(v); err != nil {
		return netip.Addr{}, fmt.Errorf("veth up: %w", err)
	}
	nsh, err := netns.GetFromPath(nsPath)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("open netns: %w", err)
	}
	defer nsh.Close()
	pl, err := netlink.LinkByName(peer)
	if err != nil {
		return netip.Addr{}, err
	}
	if err := netlink.LinkSetNsFd(pl, int(nsh)); err != nil {
		return netip.Addr{}, fmt.Errorf("move veth: %w", err)
	}
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return netip.Addr{}, err
	}
	defer h.Close()
	pl, err = h.LinkByName(peer)
	if err != nil {
		return netip.Addr{}, err
	}
	if err := h.LinkSetName(pl, "eth0"); err != nil {
		return netip.Addr{}, fmt.Errorf("rename: %w", err)
	}
	if err := h.AddrAdd(pl, &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(24, 32)}}); err != nil {
		return netip.Addr{}, fmt.Errorf("addr: %w", err)
	}
	if err := h.LinkSetUp(pl); err != nil {
		return netip.Addr{}, err
	}
	if lo, err := h.LinkByName("lo"); err == nil {
		_ = h.LinkSetUp(lo)
	}
	if err := h.RouteAdd(&netlink.Route{Gw: n.gateway.AsSlice(), LinkIndex: pl.Attrs().Index}); err != nil {
		return netip.Addr{}, fmt.Errorf("default route: %w", err)
	}
	return addr, nil
}

func (n *testNet) Detach(_ context.Context, id, _ string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if v, ok := n.veths[id]; ok {
		if l, err := netlink.LinkByName(v); err == nil {
			_ = netlink.LinkDel(l)
		}
		delete(n.veths, id)
	}
	return nil
}
