// Package conformance is the behaviour every Dataplane implementation must
// show, as one test table. The fake runs it in `go test ./dataplane/...`,
// the proxy on loopback, the eBPF implementation in kernel-tests/dataplane.
//
// It imports only dataplane and the standard library.
package conformance

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/dataplane"
)

// Harness adapts one implementation to the table.
type Harness struct {
	// New returns a Dataplane. Called twice in one test it must return
	// instances sharing state (same pin dir), as an agent restart would; the
	// harness cleans up what it created at the end of t.
	New func(t *testing.T) dataplane.Dataplane
	// Backend starts a backend for proto on addr that answers each request
	// with id and stops at the end of t. ListenBackend is a real one.
	Backend func(t *testing.T, proto dataplane.Protocol, addr netip.AddrPort, id string)
	// Probe makes n fresh connections (TCP) or exchanges from fresh sockets
	// (UDP) from inside the dataplane's scope to addr, one request each.
	Probe func(t *testing.T, proto dataplane.Protocol, addr netip.AddrPort, n int) []Reply
	// VIP and BackendAddr give the i-th address to use. Tests use distinct
	// indexes so they do not depend on each other.
	VIP         func(i int) netip.Addr
	BackendAddr func(i int) netip.Addr
	// Port returns a port free on all backend addresses and for publishing.
	// VIP ports come from it too: the proxy binds them, and an unprivileged
	// port needs no root.
	Port func(t *testing.T) uint16
	// Persistent says the implementation keeps serving between Close and
	// the next Set of a new instance (eBPF pins); the proxy's sockets die
	// with it and come back with the first Set.
	Persistent bool
}

// Reply is what one probe saw.
type Reply struct {
	Backend string         // id the backend answered with
	Peer    netip.AddrPort // getpeername (TCP) or reply source (UDP)
	Err     error
}

// Run runs the table against h.
func Run(t *testing.T, h Harness) {
	tcp := func(vip netip.Addr, port, target, published uint16, groups ...dataplane.Group) dataplane.Service {
		return dataplane.Service{ID: "svc-" + vip.String(), Name: "svc" + strings.ReplaceAll(vip.String(), ".", "_"), VIP: vip,
			Ports: []dataplane.Port{{Proto: dataplane.TCP, Port: port, TargetPort: target, Published: published}}, Groups: groups}
	}
	// backends starts n backends b<i> on consecutive addresses from base.
	backends := func(t *testing.T, proto dataplane.Protocol, base, n int, port uint16) []dataplane.Backend {
		var bs []dataplane.Backend
		for i := range n {
			addr := h.BackendAddr(base + i)
			id := fmt.Sprintf("b%d", base+i)
			h.Backend(t, proto, netip.AddrPortFrom(addr, port), id)
			bs = append(bs, dataplane.Backend{ID: id, Addr: addr, Health: dataplane.Active})
		}
		return bs
	}
	set := func(t *testing.T, d dataplane.Dataplane, svcs ...dataplane.Service) {
		t.Helper()
		if err := d.Set(&dataplane.Config{Services: svcs}); err != nil {
			t.Fatalf("Set: %v", err)
		}
	}
	tally := func(t *testing.T, rs []Reply, peer netip.AddrPort) map[string]int {
		t.Helper()
		m := map[string]int{}
		for _, r := range rs {
			if r.Err != nil {
				t.Fatalf("probe failed: %v", r.Err)
			}
			if r.Peer != peer {
				t.Fatalf("peer = %v, want the frontend %v", r.Peer, peer)
			}
			m[r.Backend]++
		}
		return m
	}

	t.Run("VIPReachesBackend", func(t *testing.T) {
		d := h.New(t)
		vp := h.Port(t)
		port := h.Port(t)
		bs := backends(t, dataplane.TCP, 0, 1, port)
		vip := h.VIP(0)
		set(t, d, tcp(vip, vp, port, 0, dataplane.Group{Version: "v1", Weight: 1, Backends: bs}))
		set(t, d, tcp(vip, vp, port, 0, dataplane.Group{Version: "v1", Weight: 1, Backends: bs})) // idempotent
		got := tally(t, h.Probe(t, dataplane.TCP, netip.AddrPortFrom(vip, vp), 20), netip.AddrPortFrom(vip, vp))
		if got["b0"] != 20 {
			t.Fatalf("replies %v, want 20 from b0", got)
		}
	})

	t.Run("PublishedPort", func(t *testing.T) {
		d := h.New(t)
		vp := h.Port(t)
		port, pub := h.Port(t), h.Port(t)
		bs := backends(t, dataplane.TCP, 1, 1, port)
		set(t, d, tcp(h.VIP(1), vp, port, pub, dataplane.Group{Version: "v1", Weight: 1, Backends: bs}))
		local := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), pub)
		got := tally(t, h.Probe(t, dataplane.TCP, local, 10), local)
		if got["b1"] != 10 {
			t.Fatalf("replies %v, want 10 from b1", got)
		}
	})

	t.Run("Weights90To10", func(t *testing.T) {
		d := h.New(t)
		vp := h.Port(t)
		port := h.Port(t)
		v1 := backends(t, dataplane.TCP, 2, 1, port)
		v2 := backends(t, dataplane.TCP, 3, 1, port)
		vip := h.VIP(2)
		set(t, d, tcp(vip, vp, port, 0, dataplane.Group{Version: "v1", Weight: 90, Backends: v1}, dataplane.Group{Version: "v2", Weight: 10, Backends: v2}))
		const n = 10000
		got := tally(t, h.Probe(t, dataplane.TCP, netip.AddrPortFrom(vip, vp), n), netip.AddrPortFrom(vip, vp))
		share := float64(got["b3"]) / n
		t.Logf("v2 share %.4f over %d connections (%v)", share, n, got)
		if share < 0.08 || share > 0.12 || got["b2"]+got["b3"] != n {
			t.Fatalf("v2 got %.2f%% (%v), want 10±2%%", share*100, got)
		}
	})

	t.Run("WeightZeroGetsNothing", func(t *testing.T) {
		d := h.New(t)
		vp := h.Port(t)
		port := h.Port(t)
		blue := backends(t, dataplane.TCP, 4, 1, port)
		green := backends(t, dataplane.TCP, 5, 1, port)
		vip := h.VIP(3)
		set(t, d, tcp(vip, vp, port, 0, dataplane.Group{Version: "blue", Weight: 100, Backends: blue}, dataplane.Group{Version: "green", Weight: 0, Backends: green}))
		got := tally(t, h.Probe(t, dataplane.TCP, netip.AddrPortFrom(vip, vp), 300), netip.AddrPortFrom(vip, vp))
		if got["b5"] != 0 || got["b4"] != 300 {
			t.Fatalf("replies %v, want all 300 from blue b4", got)
		}
		// Flip (promote): now everything goes to green.
		set(t, d, tcp(vip, vp, port, 0, dataplane.Group{Version: "blue", Weight: 0, Backends: blue}, dataplane.Group{Version: "green", Weight: 100, Backends: green}))
		got = tally(t, h.Probe(t, dataplane.TCP, netip.AddrPortFrom(vip, vp), 300), netip.AddrPortFrom(vip, vp))
		if got["b5"] != 300 {
			t.Fatalf("after flip replies %v, want all 300 from green b5", got)
		}
	})

	t.Run("UnhealthyExcluded", func(t *testing.T) {
		d := h.New(t)
		vp := h.Port(t)
		port := h.Port(t)
		bs := backends(t, dataplane.TCP, 6, 3, port)
		bs[1].Health = dataplane.Unhealthy
		bs[2].Health = dataplane.Terminating
		vip := h.VIP(4)
		set(t, d, tcp(vip, vp, port, 0, dataplane.Group{Version: "v1", Weight: 1, Backends: bs}))
		got := tally(t, h.Probe(t, dataplane.TCP, netip.AddrPortFrom(vip, vp), 300), netip.AddrPortFrom(vip, vp))
		if got["b6"] != 300 {
			t.Fatalf("replies %v, want all 300 from the healthy b6", got)
		}
	})

	t.Run("NoBackendFailsFast", func(t *testing.T) {
		d := h.New(t)
		vp := h.Port(t)
		port := h.Port(t)
		bs := backends(t, dataplane.TCP, 9, 1, port)
		bs[0].Health = dataplane.Unhealthy
		vip := h.VIP(5)
		set(t, d, tcp(vip, vp, port, 0, dataplane.Group{Version: "v1", Weight: 1, Backends: bs}))
		for _, r := range h.Probe(t, dataplane.TCP, netip.AddrPortFrom(vip, vp), 5) {
			if r.Err == nil {
				t.Fatalf("probe reached %q, want an error", r.Backend)
			}
			// A hang would end in the probe's deadline; fail-fast must not.
			var ne net.Error
			if errors.Is(r.Err, os.ErrDeadlineExceeded) || (errors.As(r.Err, &ne) && ne.Timeout()) {
				t.Fatalf("probe timed out (%v), want an immediate error", r.Err)
			}
		}
	})

	t.Run("RemovedBackendGetsNoNewConnections", func(t *testing.T) {
		d := h.New(t)
		vp := h.Port(t)
		port := h.Port(t)
		bs := backends(t, dataplane.TCP, 10, 2, port)
		vip := h.VIP(6)
		set(t, d, tcp(vip, vp, port, 0, dataplane.Group{Version: "v1", Weight: 1, Backends: bs}))
		got := tally(t, h.Probe(t, dataplane.TCP, netip.AddrPortFrom(vip, vp), 200), netip.AddrPortFrom(vip, vp))
		if got["b10"] == 0 || got["b11"] == 0 {
			t.Fatalf("replies %v, want both backends used", got)
		}
		set(t, d, tcp(vip, vp, port, 0, dataplane.Group{Version: "v1", Weight: 1, Backends: bs[1:]}))
		got = tally(t, h.Probe(t, dataplane.TCP, netip.AddrPortFrom(vip, vp), 300), netip.AddrPortFrom(vip, vp))
		if got["b11"] != 300 {
			t.Fatalf("after removal replies %v, want all 300 from b11", got)
		}
	})

	t.Run("UDPReplyFromVIP", func(t *testing.T) {
		d := h.New(t)
		vp := h.Port(t)
		port := h.Port(t)
		bs := backends(t, dataplane.UDP, 12, 2, port)
		vip := h.VIP(7)
		svc := dataplane.Service{ID: "svc-udp", Name: "udp", VIP: vip,
			Ports:  []dataplane.Port{{Proto: dataplane.UDP, Port: vp, TargetPort: port}},
			Groups: []dataplane.Group{{Version: "v1", Weight: 1, Backends: bs}}}
		set(t, d, svc)
		got := tally(t, h.Probe(t, dataplane.UDP, netip.AddrPortFrom(vip, vp), 200), netip.AddrPortFrom(vip, vp))
		if got["b12"]+got["b13"] != 200 || got["b12"] == 0 || got["b13"] == 0 {
			t.Fatalf("replies %v, want 200 spread over b12 and b13", got)
		}
	})

	t.Run("SetNilIsEmpty", func(t *testing.T) {
		d := h.New(t)
		vp := h.Port(t)
		port, pub := h.Port(t), h.Port(t)
		bs := backends(t, dataplane.TCP, 16, 1, port)
		svc := tcp(h.VIP(9), vp, port, pub, dataplane.Group{Version: "v1", Weight: 1, Backends: bs})
		set(t, d, svc)
		// The published port shows the table's state without sending
		// traffic anywhere but this host: once it is gone nothing listens.
		local := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), pub)
		if got := tally(t, h.Probe(t, dataplane.TCP, local, 10), local); got["b16"] != 10 {
			t.Fatalf("replies %v, want 10 from b16", got)
		}
		for range 2 { // idempotent
			if err := d.Set(nil); err != nil {
				t.Fatalf("Set(nil): %v", err)
			}
		}
		for _, r := range h.Probe(t, dataplane.TCP, local, 3) {
			if r.Err == nil {
				t.Fatalf("after Set(nil) %v reached %q, want nothing", local, r.Backend)
			}
		}
		set(t, d, svc)
		if got := tally(t, h.Probe(t, dataplane.TCP, local, 10), local); got["b16"] != 10 {
			t.Fatalf("after Set(nil) and Set again: replies %v, want 10 from b16", got)
		}
	})

	t.Run("RestartKeepsServing", func(t *testing.T) {
		d := h.New(t)
		vp := h.Port(t)
		port := h.Port(t)
		bs := backends(t, dataplane.TCP, 14, 2, port)
		vip := h.VIP(8)
		svc := tcp(vip, vp, port, 0, dataplane.Group{Version: "v1", Weight: 1, Backends: bs})
		set(t, d, svc)
		if err := d.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		d = h.New(t)
		if h.Persistent {
			got := tally(t, h.Probe(t, dataplane.TCP, netip.AddrPortFrom(vip, vp), 100), netip.AddrPortFrom(vip, vp))
			if got["b14"]+got["b15"] != 100 {
				t.Fatalf("after restart, before Set, replies %v", got)
			}
		}
		set(t, d, svc)
		got := tally(t, h.Probe(t, dataplane.TCP, netip.AddrPortFrom(vip, vp), 100), netip.AddrPortFrom(vip, vp))
		if got["b14"]+got["b15"] != 100 {
			t.Fatalf("after restart replies %v", got)
		}
		// Re-sync with a changed table; the stale backend must go.
		set(t, d, tcp(vip, vp, port, 0, dataplane.Group{Version: "v1", Weight: 1, Backends: bs[:1]}))
		got = tally(t, h.Probe(t, dataplane.TCP, netip.AddrPortFrom(vip, vp), 100), netip.AddrPortFrom(vip, vp))
		if got["b14"] != 100 {
			t.Fatalf("after re-sync replies %v, want all from b14", got)
		}
	})
}

// ListenBackend is a Harness.Backend on real sockets: TCP answers id and
// closes; UDP answers every datagram with id.
func ListenBackend(t *testing.T, proto dataplane.Protocol, addr netip.AddrPort, id string) {
	t.Helper()
	ListenBackendTB(t, proto, addr, id)
}

// ListenBackendTB is ListenBackend for benchmarks.
func ListenBackendTB(t testing.TB, proto dataplane.Protocol, addr netip.AddrPort, id string) {
	t.Helper()
	switch proto {
	case dataplane.TCP:
		ln, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(addr))
		if err != nil {
			t.Fatalf("backend %s: %v", id, err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.AcceptTCP()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					c.SetDeadline(time.Now().Add(10 * time.Second))
					if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
						return
					}
					c.Write([]byte(id + "\n"))
				}()
			}
		}()
	case dataplane.UDP:
		pc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
		if err != nil {
			t.Fatalf("backend %s: %v", id, err)
		}
		t.Cleanup(func() { pc.Close() })
		go func() {
			buf := make([]byte, 1500)
			for {
				_, from, err := pc.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				pc.WriteToUDPAddrPort([]byte(id+"\n"), from)
			}
		}()
	}
}

// Dial probes addr with real sockets from the calling process; it is the
// Probe of implementations whose scope includes the test process.
func Dial(proto dataplane.Protocol, addr netip.AddrPort, n int) []Reply {
	out := make([]Reply, n)
	for i := range out {
		out[i] = dialOnce(proto, addr)
	}
	return out
}

func dialOnce(proto dataplane.Protocol, addr netip.AddrPort) Reply {
	deadline := time.Now().Add(5 * time.Second)
	if proto == dataplane.UDP {
		pc, err := net.ListenUDP("udp4", nil)
		if err != nil {
			return Reply{Err: err}
		}
		defer pc.Close()
		pc.SetDeadline(deadline)
		if _, err := pc.WriteToUDPAddrPort([]byte("?\n"), addr); err != nil {
			return Reply{Err: err}
		}
		buf := make([]byte, 1500)
		k, from, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			return Reply{Err: err}
		}
		return Reply{Backend: strings.TrimSpace(string(buf[:k])), Peer: from}
	}
	c, err := net.DialTimeout("tcp4", addr.String(), 5*time.Second)
	if err != nil {
		return Reply{Err: err}
	}
	defer c.Close()
	c.SetDeadline(deadline)
	peer := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	if _, err := c.Write([]byte("?\n")); err != nil {
		return Reply{Err: err, Peer: peer}
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return Reply{Err: fmt.Errorf("read reply: %w", err), Peer: peer}
	}
	return Reply{Backend: strings.TrimSpace(line), Peer: netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port())}
}

// FreePort returns a TCP and UDP port that was free on 127.0.0.1 a moment
// ago; backends on other 127.x addresses share it.
func FreePort(t *testing.T) uint16 { t.Helper(); return FreePortTB(t) }

// FreePortTB is FreePort for benchmarks.
func FreePortTB(t testing.TB) uint16 {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := uint16(ln.Addr().(*net.TCPAddr).Port)
		pc, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", p))
		ln.Close()
		if err == nil {
			pc.Close()
			return p
		}
	}
	t.Fatal("no free port")
	return 0
}
