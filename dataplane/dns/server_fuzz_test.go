package dns

import (
	"net/netip"
	"testing"

	mdns "github.com/miekg/dns"
	"go.uber.org/zap"
)

// FuzzHandle: any datagram a task sends to the service resolver is either
// not a DNS message or gets an answer that packs, echoes the query's ID, and
// fits the client's UDP buffer. No upstreams: a forwarded name gets SERVFAIL
// here, so the fuzzer never sends traffic anywhere.
func FuzzHandle(f *testing.F) {
	tb, err := newTable(testConfig)
	if err != nil {
		f.Fatal(err)
	}
	s := &Server{domain: "warren.local", log: zap.NewNop()}
	s.table.Store(tb)
	for _, q := range []struct {
		name string
		t    uint16
	}{{"web.", mdns.TypeA}, {"tasks.web.warren.local.", mdns.TypeA}, {"web.", mdns.TypeAAAA},
		{"nope.warren.local.", mdns.TypeA}, {"warren.local.", mdns.TypeSOA}, {"example.com.", mdns.TypeA}, {"tasks.db.", mdns.TypeANY}} {
		m := new(mdns.Msg)
		m.SetQuestion(q.name, q.t)
		if q.t == mdns.TypeANY {
			m.SetEdns0(4096, true)
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, true)
	}
	f.Add([]byte{}, false)
	f.Add(make([]byte, 12), true)
	f.Fuzz(func(t *testing.T, data []byte, udp bool) {
		req := new(mdns.Msg)
		if err := req.Unpack(data); err != nil {
			return
		}
		network := "tcp"
		if udp {
			network = "udp"
		}
		resp := s.handle(req, network, netip.MustParseAddr("10.42.1.9"))
		if resp == nil {
			t.Fatal("nil answer")
		}
		if resp.Id != req.Id {
			t.Fatalf("answer id %d, query id %d", resp.Id, req.Id)
		}
		out, err := resp.Pack()
		if err != nil {
			t.Fatalf("answer does not pack: %v\n%v", err, resp)
		}
		if udp && len(out) > udpSize(req) && len(out) > mdns.MinMsgSize {
			t.Fatalf("udp answer of %d bytes for a %d-byte buffer", len(out), udpSize(req))
		}
	})
}
