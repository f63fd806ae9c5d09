package conformance

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/warrenhq/warren/dataplane"
)

// ResetBackend is a TCP backend that reads each request and then resets
// the connection instead of answering, as a broken canary does.
func ResetBackend(t *testing.T, addr netip.AddrPort) {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatalf("reset backend: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.AcceptTCP()
			if err != nil {
				return
			}
			go func() {
				c.SetDeadline(time.Now().Add(10 * time.Second))
				bufio.NewReader(c).ReadString('\n')
				c.SetLinger(0) // close sends RST
				c.Close()
			}()
		}
	}()
}

// ErrorCounts checks that d, a CounterSource, counts per backend the TCP
// connections that were refused and those the backend reset, and nothing
// against a backend that answers. One service has three backends: "ok"
// answers, "rst" resets every connection after reading the request, and
// "refused" has nothing listening.
func ErrorCounts(t *testing.T, h Harness) {
	d := h.New(t)
	src, ok := d.(dataplane.CounterSource)
	if !ok {
		t.Fatalf("%T is no CounterSource", d)
	}
	vip, port := h.VIP(90), h.Port(t)
	okAddr, rstAddr, refAddr := h.BackendAddr(90), h.BackendAddr(91), h.BackendAddr(92)
	h.Backend(t, dataplane.TCP, netip.AddrPortFrom(okAddr, port), "ok")
	ResetBackend(t, netip.AddrPortFrom(rstAddr, port))
	svc := dataplane.Service{ID: "svc-errors", Name: "errors", VIP: vip,
		Ports: []dataplane.Port{{Proto: dataplane.TCP, Port: port, TargetPort: port}},
		Groups: []dataplane.Group{{Version: "v1", Weight: 1, Backends: []dataplane.Backend{
			{ID: "ok", Addr: okAddr}, {ID: "rst", Addr: rstAddr}, {ID: "refused", Addr: refAddr},
		}}}}
	if err := d.Set(&dataplane.Config{Services: []dataplane.Service{svc}}); err != nil {
		t.Fatal(err)
	}
	const n = 150
	answered := 0
	for _, r := range h.Probe(t, dataplane.TCP, netip.AddrPortFrom(vip, port), n) {
		if r.Err == nil {
			if r.Backend != "ok" {
				t.Fatalf("answer from %q: only ok answers", r.Backend)
			}
			answered++
		}
	}
	// The proxy counts when its side of the connection ends, a moment after
	// the client saw it; the kernel counts before the client wakes.
	var got dataplane.ServiceCounters
	deadline := time.Now().Add(10 * time.Second)
	for {
		cs, err := src.Counters()
		if err != nil {
			t.Fatal(err)
		}
		got = dataplane.ServiceCounters{}
		for _, c := range cs {
			if c.Service == svc.Name {
				got = c
			}
		}
		err = checkErrorCounts(got, n, answered)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v\ncounters: %+v", err, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%d connections: ok %d, rst %d (%d resets), refused %d (%d connect failures)", n,
		got.Backends["ok"], got.Backends["rst"], got.Errors["rst"].Resets, got.Backends["refused"], got.Errors["refused"].ConnectFailures)
}

func checkErrorCounts(c dataplane.ServiceCounters, n, answered int) error {
	if c.Connections != uint64(n) {
		return fmt.Errorf("%d connections counted, want %d", c.Connections, n)
	}
	if int(c.Backends["ok"]) != answered {
		return fmt.Errorf("%d connections to ok, %d answered", c.Backends["ok"], answered)
	}
	if c.Backends["rst"] == 0 || c.Backends["refused"] == 0 {
		return fmt.Errorf("a backend got no connection: %v", c.Backends)
	}
	want := map[string]dataplane.BackendErrors{
		"rst":     {Resets: c.Backends["rst"]},
		"refused": {ConnectFailures: c.Backends["refused"]},
	}
	for b, w := range want {
		if c.Errors[b] != w {
			return fmt.Errorf("backend %s: errors %+v, want %+v", b, c.Errors[b], w)
		}
	}
	if e := c.Errors["ok"]; e != (dataplane.BackendErrors{}) {
		return fmt.Errorf("backend ok: errors %+v, want none", e)
	}
	return nil
}
