package proxy_test

import (
	"bufio"
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenhq/warren/dataplane"
	"github.com/warrenhq/warren/dataplane/conformance"
	"github.com/warrenhq/warren/dataplane/proxy"
)

// The proxy's own edge cases, on loopback without root: VIPs are 127.0.5.x
// and backends 127.0.6.x (Linux routes all of 127/8 to lo), every port is a
// free one. Linux only for the same reason as TestProxyConformance.

func vip(i byte) netip.Addr     { return netip.AddrFrom4([4]byte{127, 0, 5, i}) }
func backend(i byte) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 6, i}) }

func newDP(t *testing.T) *proxy.Dataplane {
	d := proxy.NewDataplane("")
	t.Cleanup(func() { d.Close() })
	return d
}

func set(t *testing.T, d *proxy.Dataplane, svcs ...dataplane.Service) {
	t.Helper()
	if err := d.Set(&dataplane.Config{Services: svcs}); err != nil {
		t.Fatalf("Set: %v", err)
	}
}

func service(name string, addr netip.Addr, proto dataplane.Protocol, port, target, published uint16, groups ...dataplane.Group) dataplane.Service {
	return dataplane.Service{ID: "svc-" + name, Name: name, VIP: addr,
		Ports: []dataplane.Port{{Proto: proto, Port: port, TargetPort: target, Published: published}}, Groups: groups}
}

func group(weight uint32, bs ...dataplane.Backend) dataplane.Group {
	return dataplane.Group{Version: "v1", Weight: weight, Backends: bs}
}

func be(id string, a netip.Addr) dataplane.Backend {
	return dataplane.Backend{ID: id, Addr: a, Health: dataplane.Active}
}

// echoBackend answers every line of a TCP connection with "id line" until
// the client closes, so one connection can outlive a Set.
func echoBackend(t *testing.T, addr netip.AddrPort, id string) {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatalf("backend %s: %v", id, err)
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
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(id + " " + line)); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// conn is one client connection through the proxy.
type conn struct {
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr netip.AddrPort) *conn {
	t.Helper()
	c, err := net.DialTimeout("tcp4", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial %v: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &conn{c, bufio.NewReader(c)}
}

// say sends a line and returns the reply without its newline.
func (c *conn) say(line string) (string, error) {
	if _, err := c.c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	reply, err := c.r.ReadString('\n')
	return strings.TrimSuffix(reply, "\n"), err
}

func counters(t *testing.T, d *proxy.Dataplane, service string) dataplane.ServiceCounters {
	t.Helper()
	cs, err := d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Service == service {
			return c
		}
	}
	return dataplane.ServiceCounters{Service: service}
}

// eventually polls cond until it holds; the deadline only bounds a failure.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// talk is one exchange on a fresh connection; the error is the first of
// dial, write and read, as a reset can arrive during any of them.
func talk(addr netip.AddrPort, line string) (string, error) {
	c, err := net.DialTimeout("tcp4", addr.String(), 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return (&conn{c, bufio.NewReader(c)}).say(line)
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// TestTCPNoBackendResets: a service without a usable backend, and one whose
// only backend refuses, both reset the client's connection at once instead
// of leaving it hanging or closing it cleanly (which a client would take for
// an empty answer).
func TestTCPNoBackendResets(t *testing.T) {
	d := newDP(t)
	port, target := conformance.FreePort(t), conformance.FreePort(t)
	down := be("b1", backend(1))
	down.Health = dataplane.Unhealthy
	set(t, d,
		service("empty", vip(1), dataplane.TCP, port, target, 0),
		service("unhealthy", vip(2), dataplane.TCP, port, target, 0, group(1, down)),
		// Listed and active, but nothing listens on backend(3):target.
		service("refusing", vip(3), dataplane.TCP, port, target, 0, group(1, be("b3", backend(3)))))
	for _, a := range []netip.Addr{vip(1), vip(2), vip(3)} {
		reply, err := talk(netip.AddrPortFrom(a, port), "?")
		if !isReset(err) {
			t.Errorf("%v: reply %q, err %v; want a connection reset", a, reply, err)
		}
	}
	for _, svc := range []string{"empty", "unhealthy"} {
		if c := counters(t, d, svc); c.Drops != 1 || c.Connections != 0 {
			t.Errorf("%s: %d drops, %d connections; want 1 drop", svc, c.Drops, c.Connections)
		}
	}
}

// TestUDPNoBackend: datagrams to a service without backends are dropped and
// counted, and the same client socket is served as soon as a Set gives the
// service a backend (a dropped datagram leaves no session behind).
func TestUDPNoBackend(t *testing.T) {
	d := newDP(t)
	port, target := conformance.FreePort(t), conformance.FreePort(t)
	conformance.ListenBackend(t, dataplane.UDP, netip.AddrPortFrom(backend(10), target), "u1")
	front := netip.AddrPortFrom(vip(10), port)
	set(t, d, service("dns", vip(10), dataplane.UDP, port, target, 0))

	pc, err := net.ListenUDP("udp4", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for range 3 {
		if _, err := pc.WriteToUDPAddrPort([]byte("?\n"), front); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "3 drops", func() bool { return counters(t, d, "dns").Drops == 3 })

	// Anything the proxy had answered to the dropped datagrams would be
	// queued on pc ahead of the reply checked below.
	set(t, d, service("dns", vip(10), dataplane.UDP, port, target, 0, group(1, be("u1", backend(10)))))
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := pc.WriteToUDPAddrPort([]byte("?\n"), front); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	n, from, err := pc.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("after a backend appeared: %v", err)
	}
	if got := strings.TrimSpace(string(buf[:n])); got != "u1" || from != front {
		t.Fatalf("reply %q from %v, want u1 from %v", got, from, front)
	}
	if c := counters(t, d, "dns"); c.Drops != 3 || c.Connections != 1 || c.Backends["u1"] != 1 {
		t.Fatalf("counters %+v, want 3 drops and 1 flow to u1", c)
	}
}

// TestRemovedBackendKeepsOpenConnection: a Set that takes a backend out of
// the table sends new connections elsewhere but leaves the open one alone —
// also a Set(nil), which closes the listener itself.
func TestRemovedBackendKeepsOpenConnection(t *testing.T) {
	d := newDP(t)
	port, target := conformance.FreePort(t), conformance.FreePort(t)
	echoBackend(t, netip.AddrPortFrom(backend(20), target), "b1")
	echoBackend(t, netip.AddrPortFrom(backend(21), target), "b2")
	front := netip.AddrPortFrom(vip(20), port)
	set(t, d, service("web", vip(20), dataplane.TCP, port, target, 0, group(1, be("b1", backend(20)))))

	open := dial(t, front)
	if r, err := open.say("one"); err != nil || r != "b1 one" {
		t.Fatalf("reply %q, err %v; want b1 one", r, err)
	}
	set(t, d, service("web", vip(20), dataplane.TCP, port, target, 0, group(1, be("b2", backend(21)))))
	if r, err := dial(t, front).say("new"); err != nil || r != "b2 new" {
		t.Fatalf("new connection after the removal: reply %q, err %v; want b2 new", r, err)
	}
	if r, err := open.say("two"); err != nil || r != "b1 two" {
		t.Fatalf("open connection after its backend was removed: reply %q, err %v; want b1 two", r, err)
	}
	if err := d.Set(nil); err != nil {
		t.Fatalf("Set(nil): %v", err)
	}
	if c, err := net.DialTimeout("tcp4", front.String(), 5*time.Second); err == nil {
		c.Close()
		t.Fatal("the frontend still accepts after Set(nil)")
	}
	if r, err := open.say("three"); err != nil || r != "b1 three" {
		t.Fatalf("open connection after Set(nil): reply %q, err %v; want b1 three", r, err)
	}
}

// TestSetNil: nil is the empty table — every listener goes, its address is
// free for others, and the same Dataplane serves again on the next Set.
func TestSetNil(t *testing.T) {
	d := newDP(t)
	port, target, pub := conformance.FreePort(t), conformance.FreePort(t), conformance.FreePort(t)
	conformance.ListenBackend(t, dataplane.TCP, netip.AddrPortFrom(backend(30), target), "b1")
	conformance.ListenBackend(t, dataplane.UDP, netip.AddrPortFrom(backend(30), target), "b1")
	web := service("web", vip(30), dataplane.TCP, port, target, pub, group(1, be("b1", backend(30))))
	dns := service("dns", vip(31), dataplane.UDP, port, target, 0, group(1, be("b1", backend(30))))
	set(t, d, web, dns)
	if err := d.Set(nil); err != nil {
		t.Fatalf("Set(nil): %v", err)
	}
	if err := d.Set(nil); err != nil {
		t.Fatalf("second Set(nil): %v", err)
	}
	for _, a := range []netip.AddrPort{netip.AddrPortFrom(vip(30), port), netip.AddrPortFrom(netip.IPv4Unspecified(), pub)} {
		ln, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(a))
		if err != nil {
			t.Fatalf("tcp %v still held after Set(nil): %v", a, err)
		}
		ln.Close()
	}
	pc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(vip(31), port)))
	if err != nil {
		t.Fatalf("udp %v:%d still held after Set(nil): %v", vip(31), port, err)
	}
	pc.Close()
	set(t, d, web, dns)
	probe(t, dataplane.TCP, netip.AddrPortFrom(vip(30), port), "b1")
	probe(t, dataplane.UDP, netip.AddrPortFrom(vip(31), port), "b1")
}

// probe checks that one exchange with addr is answered by want, from addr.
func probe(t *testing.T, proto dataplane.Protocol, addr netip.AddrPort, want string) {
	t.Helper()
	r := conformance.Dial(proto, addr, 1)[0]
	if r.Err != nil || r.Backend != want || r.Peer != addr {
		t.Fatalf("%v %v: reply %q from %v, err %v; want %s from the frontend", proto, addr, r.Backend, r.Peer, r.Err, want)
	}
}

// TestWeights: over many connections each group gets its weight's share,
// and the counters add up to what the clients saw.
func TestWeights(t *testing.T) {
	d := newDP(t)
	port, target := conformance.FreePort(t), conformance.FreePort(t)
	conformance.ListenBackend(t, dataplane.TCP, netip.AddrPortFrom(backend(40), target), "b1")
	conformance.ListenBackend(t, dataplane.TCP, netip.AddrPortFrom(backend(41), target), "b2")
	conformance.ListenBackend(t, dataplane.TCP, netip.AddrPortFrom(backend(42), target), "b3")
	set(t, d, dataplane.Service{ID: "svc-web", Name: "web", VIP: vip(40),
		Ports: []dataplane.Port{{Proto: dataplane.TCP, Port: port, TargetPort: target}},
		Groups: []dataplane.Group{
			{Version: "v1", Weight: 70, Backends: []dataplane.Backend{be("b1", backend(40)), be("b2", backend(41))}},
			{Version: "v2", Weight: 30, Backends: []dataplane.Backend{be("b3", backend(42))}},
		}})
	const n = 4000
	front := netip.AddrPortFrom(vip(40), port)
	got := map[string]int{}
	for _, r := range conformance.Dial(dataplane.TCP, front, n) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		got[r.Backend]++
	}
	// v1's 70% is split over its two backends. 4000 draws put 4 standard
	// deviations (≈ 3% for a 30% share) inside the bounds.
	want := map[string]float64{"b1": 0.35, "b2": 0.35, "b3": 0.30}
	for id, share := range want {
		if f := float64(got[id]) / n; f < share-0.04 || f > share+0.04 {
			t.Errorf("%s got %.1f%% of %d connections (%v), want %.0f±4%%", id, 100*f, n, got, 100*share)
		}
	}
	c := counters(t, d, "web")
	if c.Connections != n || c.Drops != 0 {
		t.Errorf("counters: %d connections, %d drops; want %d, 0", c.Connections, c.Drops, n)
	}
	for id := range want {
		if c.Backends[id] != uint64(got[id]) {
			t.Errorf("counter of %s = %d, clients saw %d", id, c.Backends[id], got[id])
		}
	}
}

// TestCloseReleasesListeners is an agent restart: Close gives up every
// address (a connection already open runs on), and a new proxy binds the
// same frontends and serves them.
func TestCloseReleasesListeners(t *testing.T) {
	port, target, pub := conformance.FreePort(t), conformance.FreePort(t), conformance.FreePort(t)
	echoBackend(t, netip.AddrPortFrom(backend(50), target), "b1")
	conformance.ListenBackend(t, dataplane.UDP, netip.AddrPortFrom(backend(50), target), "b1")
	cfg := &dataplane.Config{Services: []dataplane.Service{
		service("web", vip(50), dataplane.TCP, port, target, pub, group(1, be("b1", backend(50)))),
		service("dns", vip(51), dataplane.UDP, port, target, 0, group(1, be("b1", backend(50)))),
	}}
	front := netip.AddrPortFrom(vip(50), port)
	published := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), pub)

	first := proxy.NewDataplane("")
	if err := first.Set(cfg); err != nil {
		first.Close()
		t.Fatal(err)
	}
	open := dial(t, front)
	if r, err := open.say("one"); err != nil || r != "b1 one" {
		t.Fatalf("reply %q, err %v; want b1 one", r, err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, a := range []netip.AddrPort{front, published} {
		if c, err := net.DialTimeout("tcp4", a.String(), 5*time.Second); err == nil {
			c.Close()
			t.Fatalf("%v still accepts after Close", a)
		}
	}
	if r, err := open.say("two"); err != nil || r != "b1 two" {
		t.Fatalf("open connection after Close: reply %q, err %v; want b1 two", r, err)
	}

	second := newDP(t)
	if err := second.Set(cfg); err != nil {
		t.Fatalf("a new proxy cannot bind what the closed one held: %v", err)
	}
	if r, err := dial(t, front).say("three"); err != nil || r != "b1 three" {
		t.Fatalf("after restart: reply %q, err %v; want b1 three", r, err)
	}
	if r, err := dial(t, published).say("four"); err != nil || r != "b1 four" {
		t.Fatalf("published port after restart: reply %q, err %v; want b1 four", r, err)
	}
	probe(t, dataplane.UDP, netip.AddrPortFrom(vip(51), port), "b1")
}

// TestSetReportsUnboundFrontend: a frontend whose address is taken fails
// the Set, naming it, while the other frontends serve.
func TestSetReportsUnboundFrontend(t *testing.T) {
	d := newDP(t)
	port, target := conformance.FreePort(t), conformance.FreePort(t)
	conformance.ListenBackend(t, dataplane.TCP, netip.AddrPortFrom(backend(60), target), "b1")
	taken, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(netip.AddrPortFrom(vip(61), port)))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	err = d.Set(&dataplane.Config{Services: []dataplane.Service{
		service("web", vip(60), dataplane.TCP, port, target, 0, group(1, be("b1", backend(60)))),
		service("blocked", vip(61), dataplane.TCP, port, target, 0, group(1, be("b1", backend(60)))),
	}})
	if err == nil || !strings.Contains(err.Error(), netip.AddrPortFrom(vip(61), port).String()) {
		t.Fatalf("Set with a taken address: %v, want an error naming %v:%d", err, vip(61), port)
	}
	probe(t, dataplane.TCP, netip.AddrPortFrom(vip(60), port), "b1")
}
