//go:build linux

package networktest

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	mdns "github.com/miekg/dns"

	"github.com/warrenhq/warren/dataplane/dns"
	"github.com/warrenhq/warren/kernel-tests/ktest"
)

// TestDNSWithDig serves the name table on port 53 of a gateway-like address
// inside a namespace and queries it with the real dig, as a container would.
func TestDNSWithDig(t *testing.T) {
	ktest.Root(t)
	ktest.Binary(t, "dig")
	ktest.Binary(t, "nsenter")
	node := newNetns(t, "dns")
	ktest.Run(t, "ip", "-n", node, "addr", "add", "10.42.7.1/32", "dev", "lo")

	// The upstream is on the host's loopback: the server forwards from the
	// process's own namespace (the agent runs in the host's), while it serves
	// containers on the address it was started in.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upstream := pc.LocalAddr().String()
	up := &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: r.Question[0].Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 99)})
		_ = w.WriteMsg(m)
	})}
	go func() { _ = up.ActivateAndServe() }()
	t.Cleanup(func() { _ = up.Shutdown() })

	var srv *dns.Server
	err = ns.WithNetNSPath(nsPath(node), func(ns.NetNS) (err error) {
		srv, err = dns.New(dns.Options{ListenAddr: "10.42.7.1:53", Upstreams: []string{upstream}})
		if err != nil {
			return err
		}
		return srv.Start()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	if err := srv.Set(&dns.Config{
		Services: map[string]netip.Addr{"web": netip.MustParseAddr("10.43.0.10")},
		Tasks:    map[string][]netip.Addr{"web": {netip.MustParseAddr("10.42.7.5"), netip.MustParseAddr("10.42.8.5")}},
	}); err != nil {
		t.Fatal(err)
	}

	dig := func(args ...string) string {
		return inNS(t, node, append([]string{"dig", "@10.42.7.1", "+time=2", "+tries=2"}, args...)...)
	}
	short := func(args ...string) string {
		return strings.Join(strings.Fields(dig(append([]string{"+short"}, args...)...)), ",")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"web"}, "10.43.0.10"},
		{[]string{"+tcp", "web.warren.local"}, "10.43.0.10"},
		{[]string{"tasks.web.warren.local"}, "10.42.7.5,10.42.8.5"},
		{[]string{"tasks.web"}, "10.42.7.5,10.42.8.5"},
		{[]string{"example.com"}, "192.0.2.99"},
		{[]string{"web", "AAAA"}, ""},
	} {
		if got := short(tc.args...); got != tc.want {
			t.Errorf("dig %v = %q, want %q", tc.args, got, tc.want)
		}
	}
	if out := dig("nope.warren.local"); !strings.Contains(out, "status: NXDOMAIN") || !strings.Contains(out, " aa") {
		t.Errorf("unknown name in domain: want authoritative NXDOMAIN:\n%s", out)
	}
}
