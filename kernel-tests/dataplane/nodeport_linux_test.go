package dataplanetest

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/warrenhq/warren/dataplane"
	bpf "github.com/warrenhq/warren/dataplane/ebpf"
	"github.com/warrenhq/warren/kernel-tests/ktest"
)

// npTopology is a client host and a node on one link; the node has a bridge
// with two backend namespaces. The client has no route to the bridge, so
// every reply must be translated back to node:published.
type npTopology struct {
	client, node string // netns names
	backends     []string
	uplink       string // in the node netns
	nodeAddr     netip.Addr
	clientAddr   netip.Addr
	backendAddrs []netip.Addr
}

func netnsPath(name string) string { return "/run/netns/" + name }

func newNPTopology(t *testing.T) *npTopology {
	t.Helper()
	ktest.Binary(t, "ip")
	pid := os.Getpid()
	tp := &npTopology{
		client:     fmt.Sprintf("wnp%d-client", pid),
		node:       fmt.Sprintf("wnp%d-node", pid),
		uplink:     "uplink0",
		nodeAddr:   netip.MustParseAddr("192.168.77.1"),
		clientAddr: netip.MustParseAddr("192.168.77.2"),
	}
	for _, n := range []string{tp.client, tp.node} {
		ktest.Run(t, "ip", "netns", "add", n)
		t.Cleanup(func() { ktest.RunQuiet("ip", "netns", "del", n) })
	}
	in := func(netns string, args ...string) { ktest.Run(t, "ip", append([]string{"-n", netns}, args...)...) }
	// Client ⟷ node uplink.
	ktest.Run(t, "ip", "-n", tp.client, "link", "add", "eth0", "type", "veth", "peer", "name", tp.uplink, "netns", tp.node)
	in(tp.client, "addr", "add", tp.clientAddr.String()+"/24", "dev", "eth0")
	in(tp.client, "link", "set", "eth0", "up")
	in(tp.node, "addr", "add", tp.nodeAddr.String()+"/24", "dev", tp.uplink)
	in(tp.node, "link", "set", tp.uplink, "up")
	// Node bridge with the backends.
	in(tp.node, "link", "add", "br0", "type", "bridge")
	in(tp.node, "addr", "add", "10.98.0.1/24", "dev", "br0")
	in(tp.node, "link", "set", "br0", "up")
	ktest.Run(t, "ip", "netns", "exec", tp.node, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	for i := range 2 {
		b := fmt.Sprintf("wnp%d-b%d", pid, i+1)
		addr := netip.AddrFrom4([4]byte{10, 98, 0, byte(11 + i)})
		ktest.Run(t, "ip", "netns", "add", b)
		t.Cleanup(func() { ktest.RunQuiet("ip", "netns", "del", b) })
		host := fmt.Sprintf("veth-b%d", i+1)
		in(tp.node, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", b)
		in(tp.node, "link", "set", host, "master", "br0", "up")
		in(b, "addr", "add", addr.String()+"/24", "dev", "eth0")
		in(b, "link", "set", "eth0", "up")
		in(b, "route", "add", "default", "via", "10.98.0.1")
		tp.backends = append(tp.backends, b)
		tp.backendAddrs = append(tp.backendAddrs, addr)
	}
	return tp
}

// serve listens on :port inside a backend's netns and answers each
// connection with "<id> <client address as the backend sees it>".
func (tp *npTopology) serve(t *testing.T, i int, port uint16, id string) {
	t.Helper()
	var ln net.Listener
	err := ns.WithNetNSPath(netnsPath(tp.backends[i]), func(ns.NetNS) (err error) {
		ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		t.Fatalf("listen in %s: %v", tp.backends[i], err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fmt.Fprintf(c, "%s %s\n", id, c.RemoteAddr())
				// The client closes first, so its ports are not reused
				// while this side sits in TIME_WAIT.
				io.Copy(io.Discard, c)
			}()
		}
	}()
}

type npReply struct {
	backend string
	peer    netip.AddrPort
}

// dial connects n times from the client netns to to.
func (tp *npTopology) dial(t *testing.T, to netip.AddrPort, n int) []npReply {
	t.Helper()
	var out []npReply
	err := ns.WithNetNSPath(netnsPath(tp.client), func(ns.NetNS) error {
		for range n {
			c, err := net.DialTimeout("tcp4", to.String(), 5*time.Second)
			if err != nil {
				return err
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err != nil {
				return fmt.Errorf("read: %w", err)
			}
			id, peer, _ := strings.Cut(strings.TrimSpace(line), " ")
			ap, err := netip.ParseAddrPort(peer)
			if err != nil {
				return fmt.Errorf("reply %q: %w", line, err)
			}
			out = append(out, npReply{id, ap})
		}
		return nil
	})
	if err != nil {
		t.Fatalf("dial %v from %s after %d connections: %v", to, tp.client, len(out), err)
	}
	return out
}

// newNodeportDP starts the eBPF dataplane with the routing mesh on the
// node's uplink (interface names resolve in the caller's netns).
func (tp *npTopology) newDP(t *testing.T, cg, pins string) dataplane.Dataplane {
	t.Helper()
	var d dataplane.Dataplane
	err := ns.WithNetNSPath(netnsPath(tp.node), func(ns.NetNS) (err error) {
		d, err = bpf.New(bpf.Options{CgroupPath: cg, PinDir: pins,
			NodeportInterface: tp.uplink, NodeSubnet: netip.MustParsePrefix("10.98.0.0/24")})
		return err
	})
	if err != nil {
		t.Fatalf("New with routing mesh: %v", err)
	}
	return d
}

// TestNodeportRoutingMesh: a client on another host reaches a published
// port on the node's address, is balanced 90/10 over two local backends
// that see its real address, and an unhealthy backend stops getting new
// connections after Set — also across an agent restart.
func TestNodeportRoutingMesh(t *testing.T) {
	ktest.Root(t)
	tp := newNPTopology(t)
	cg := newCgroup(t, "nodeport")
	pins := pinDir(t, t.Name())
	cleanupPins(t, pins)
	const target, published = 8081, 30080
	tp.serve(t, 0, target, "b1")
	tp.serve(t, 1, target, "b2")

	d := tp.newDP(t, cg, pins)
	t.Cleanup(func() { d.Close() })
	cfg := func(b1 dataplane.Health) *dataplane.Config {
		return &dataplane.Config{Services: []dataplane.Service{{
			ID: "svc-web", Name: "web", VIP: netip.MustParseAddr("10.43.77.1"),
			Ports: []dataplane.Port{{Proto: dataplane.TCP, Port: 80, TargetPort: target, Published: published}},
			Groups: []dataplane.Group{
				{Version: "v1", Weight: 90, Backends: []dataplane.Backend{{ID: "b1", Addr: tp.backendAddrs[0], Health: b1}}},
				{Version: "v2", Weight: 10, Backends: []dataplane.Backend{{ID: "b2", Addr: tp.backendAddrs[1]}}},
			},
		}}}
	}
	if err := d.Set(cfg(dataplane.Active)); err != nil {
		t.Fatal(err)
	}
	if err := d.Set(cfg(dataplane.Active)); err != nil { // idempotent
		t.Fatal(err)
	}
	front := netip.AddrPortFrom(tp.nodeAddr, published)

	const n = 2000
	got := map[string]int{}
	for _, r := range tp.dial(t, front, n) {
		got[r.backend]++
		if r.peer.Addr() != tp.clientAddr {
			t.Fatalf("backend %s saw %v, want the client's address %v", r.backend, r.peer, tp.clientAddr)
		}
	}
	share := float64(got["b1"]) / n
	t.Logf("routing mesh 90/10 over %d connections: b1 %d (%.1f%%), b2 %d", n, got["b1"], 100*share, got["b2"])
	if math.Abs(share-0.9) > 0.04 {
		t.Errorf("b1 got %.1f%% of connections, want 90±4", 100*share)
	}

	// Agent restart: the pinned links keep serving, a new agent re-attaches
	// idempotently and marks b1 unhealthy.
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if r := tp.dial(t, front, 20); len(r) != 20 {
		t.Fatalf("without the agent: %d replies", len(r))
	}
	d = tp.newDP(t, cg, pins)
	if err := d.Set(cfg(dataplane.Unhealthy)); err != nil {
		t.Fatal(err)
	}
	for _, r := range tp.dial(t, front, 200) {
		if r.backend != "b2" {
			t.Fatalf("unhealthy b1 still got a new connection")
		}
	}

	// Switching the routing mesh off detaches it: the port is closed again.
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	var off dataplane.Dataplane
	err := ns.WithNetNSPath(netnsPath(tp.node), func(ns.NetNS) (err error) {
		off, err = bpf.New(bpf.Options{CgroupPath: cg, PinDir: pins})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	d = off
	err = ns.WithNetNSPath(netnsPath(tp.client), func(ns.NetNS) error {
		c, err := net.DialTimeout("tcp4", front.String(), 5*time.Second)
		if err == nil {
			c.Close()
			return fmt.Errorf("routing mesh off but %v still answers", front)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
