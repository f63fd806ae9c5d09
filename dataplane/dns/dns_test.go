package dns

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"go.uber.org/zap"
)

var testConfig = &Config{
	Services: map[string]netip.Addr{"web": netip.MustParseAddr("10.43.0.10"), "DB": netip.MustParseAddr("10.43.0.11")},
	Tasks: map[string][]netip.Addr{
		"web": {netip.MustParseAddr("10.42.2.7"), netip.MustParseAddr("10.42.1.5"), netip.MustParseAddr("10.42.1.5")},
		"db":  {},
	},
}

func TestResolveTable(t *testing.T) {
	tb, err := newTable(testConfig)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		q     string
		v     verdict
		addrs string
	}{
		{"web.", answer, "10.43.0.10"},
		{"WEB.warren.local.", answer, "10.43.0.10"},
		{"db", answer, "10.43.0.11"},
		{"tasks.web", answer, "10.42.1.5,10.42.2.7"},
		{"tasks.web.warren.local.", answer, "10.42.1.5,10.42.2.7"},
		{"tasks.db.warren.local.", answer, ""},
		{"nope.warren.local.", nxdomain, ""},
		{"tasks.nope.warren.local.", nxdomain, ""},
		{"warren.local.", answer, ""},
		{"nope.", forward, ""},
		{"tasks.nope.", forward, ""},
		{"example.com.", forward, ""},
		{"web.example.com.", forward, ""},
		{"notwarren.local.", forward, ""},
	}
	for _, tc := range cases {
		v, addrs, _ := tb.resolve("warren.local", tc.q, netip.Addr{})
		var got []string
		for _, a := range addrs {
			got = append(got, a.String())
		}
		if v != tc.v || strings.Join(got, ",") != tc.addrs {
			t.Errorf("resolve(%s) = %v %v, want %v %s", tc.q, v, got, tc.v, tc.addrs)
		}
	}
}

// Compose names inside a stack: a task of stack shop asking for "db" gets
// shop_db, another stack's task gets its own db, a task outside any stack
// gets the service named db.
func TestResolveAliases(t *testing.T) {
	shopTask, blogTask, other := netip.MustParseAddr("10.42.1.9"), netip.MustParseAddr("10.42.2.9"), netip.MustParseAddr("10.42.3.9")
	tb, err := newTable(&Config{
		Services: map[string]netip.Addr{"shop_db": netip.MustParseAddr("10.43.0.1"), "blog_db": netip.MustParseAddr("10.43.0.2"), "db": netip.MustParseAddr("10.43.0.3")},
		Tasks:    map[string][]netip.Addr{"shop_db": {netip.MustParseAddr("10.42.1.20")}},
		Scopes:   map[netip.Addr]string{shopTask: "shop", blogTask: "blog"},
		Aliases:  map[string]map[string]string{"shop": {"db": "shop_db"}, "blog": {"db": "blog_db"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		client netip.Addr
		q      string
		want   string
	}{
		{shopTask, "db.", "10.43.0.1"},
		{shopTask, "db.warren.local.", "10.43.0.1"},
		{shopTask, "tasks.db.", "10.42.1.20"},
		{shopTask, "shop_db.", "10.43.0.1"},
		{shopTask, "blog_db.", "10.43.0.2"},
		{netip.AddrFrom16(shopTask.As16()), "db.", "10.43.0.1"},
		{blogTask, "db.", "10.43.0.2"},
		{other, "db.", "10.43.0.3"},
		{netip.Addr{}, "db.", "10.43.0.3"},
	} {
		_, addrs, _ := tb.resolve("warren.local", tc.q, tc.client)
		var got []string
		for _, a := range addrs {
			got = append(got, a.String())
		}
		if strings.Join(got, ",") != tc.want {
			t.Errorf("%s asks %s: %v, want %s", tc.client, tc.q, got, tc.want)
		}
	}
	if _, err := newTable(&Config{Aliases: map[string]map[string]string{"s": {"tasks.x": "y"}}}); err == nil {
		t.Error("alias tasks.x accepted")
	}
}

func TestServerAnswersAliasesByClientAddress(t *testing.T) {
	s := startServer(t)
	c := *testConfig
	c.Scopes = map[netip.Addr]string{netip.MustParseAddr("127.0.0.1"): "shop"}
	c.Aliases = map[string]map[string]string{"shop": {"front": "web"}}
	if err := s.Set(&c); err != nil {
		t.Fatal(err)
	}
	if r := query(t, s, "udp", "front", mdns.TypeA); aRecords(r) != "10.43.0.10" {
		t.Errorf("alias over udp: %v", r)
	}
	if r := query(t, s, "tcp", "front.warren.local", mdns.TypeA); aRecords(r) != "10.43.0.10" {
		t.Errorf("alias over tcp: %v", r)
	}
}

func TestSetRejects(t *testing.T) {
	s, err := New(Options{ListenAddr: "127.0.0.1:0", Upstreams: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Config{
		{Services: map[string]netip.Addr{"bad name!": netip.MustParseAddr("10.43.0.1")}},
		{Services: map[string]netip.Addr{"v6": netip.MustParseAddr("fd00::1")}},
		{Services: map[string]netip.Addr{"tasks.x": netip.MustParseAddr("10.43.0.1")}},
		{Tasks: map[string][]netip.Addr{"x": {{}}}},
	} {
		if err := s.Set(c); err == nil {
			t.Errorf("Set(%+v) accepted", c)
		}
	}
}

func TestUpstreams(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(path, []byte("search example\nnameserver 192.0.2.53\nnameserver 10.42.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := normUpstreams(upstreamsFromResolvConf(path), "10.42.0.1:53")
	if err != nil || !slices.Equal(got, []string{"192.0.2.53:53"}) {
		t.Fatalf("upstreams = %v, %v", got, err)
	}
	if _, err := normUpstreams([]string{"not an ip"}, ""); err == nil {
		t.Fatal("bad upstream accepted")
	}
}

// fakeUpstream answers every A query with 192.0.2.1, marking the TXT of
// big.example. large enough to be truncated over UDP.
func fakeUpstream(t *testing.T) string {
	t.Helper()
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		if q.Name == "missing.example." {
			m.Rcode = mdns.RcodeNameError
		} else if q.Qtype == mdns.TypeTXT {
			for i := 0; i < 40; i++ {
				m.Answer = append(m.Answer, &mdns.TXT{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeTXT, Class: mdns.ClassINET, Ttl: 60}, Txt: []string{strings.Repeat("x", 60)}})
			}
			if w.RemoteAddr().Network() == "udp" {
				m.Truncate(512)
			}
		} else {
			m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 1)})
		}
		_ = w.WriteMsg(m)
	})
	pc, ln, err := listenBoth("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	u := &mdns.Server{PacketConn: pc, Handler: h}
	tc := &mdns.Server{Listener: ln, Handler: h}
	go func() { _ = u.ActivateAndServe() }()
	go func() { _ = tc.ActivateAndServe() }()
	t.Cleanup(func() { _ = u.Shutdown(); _ = tc.Shutdown() })
	return pc.LocalAddr().String()
}

func startServer(t *testing.T, upstreams ...string) *Server {
	t.Helper()
	s, err := New(Options{ListenAddr: "127.0.0.1:0", Upstreams: upstreams})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set(testConfig); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func query(t *testing.T, s *Server, network, name string, qtype uint16) *mdns.Msg {
	t.Helper()
	c := &mdns.Client{Net: network, Timeout: 5 * time.Second}
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), qtype)
	r, _, err := c.Exchange(m, s.Addr().String())
	if err != nil {
		t.Fatalf("query %s %s: %v", network, name, err)
	}
	return r
}

func aRecords(m *mdns.Msg) string {
	var out []string
	for _, rr := range m.Answer {
		if a, ok := rr.(*mdns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return strings.Join(out, ",")
}

func TestServerAnswersAndForwards(t *testing.T) {
	up := fakeUpstream(t)
	s := startServer(t, up)
	cases := []struct {
		net, name string
		qtype     uint16
		rcode     int
		a         string
		aa        bool
	}{
		{"udp", "web", mdns.TypeA, mdns.RcodeSuccess, "10.43.0.10", true},
		{"tcp", "web.warren.local", mdns.TypeA, mdns.RcodeSuccess, "10.43.0.10", true},
		{"udp", "tasks.web.warren.local", mdns.TypeA, mdns.RcodeSuccess, "10.42.1.5,10.42.2.7", true},
		{"udp", "web", mdns.TypeAAAA, mdns.RcodeSuccess, "", true},
		{"udp", "nope.warren.local", mdns.TypeA, mdns.RcodeNameError, "", true},
		{"udp", "example.org", mdns.TypeA, mdns.RcodeSuccess, "192.0.2.1", false},
		{"tcp", "example.org", mdns.TypeA, mdns.RcodeSuccess, "192.0.2.1", false},
		{"udp", "missing.example", mdns.TypeA, mdns.RcodeNameError, "", false},
	}
	for _, tc := range cases {
		r := query(t, s, tc.net, tc.name, tc.qtype)
		if r.Rcode != tc.rcode || aRecords(r) != tc.a || r.Authoritative != tc.aa {
			t.Errorf("%s %s %s: rcode %s A %q aa %v; want %s %q %v", tc.net, tc.name, mdns.TypeToString[tc.qtype],
				mdns.RcodeToString[r.Rcode], aRecords(r), r.Authoritative, mdns.RcodeToString[tc.rcode], tc.a, tc.aa)
		}
	}
	// Large upstream answers: truncated over UDP, complete over TCP.
	if r := query(t, s, "tcp", "big.example", mdns.TypeTXT); len(r.Answer) != 40 {
		t.Errorf("TXT over TCP: %d answers, want 40", len(r.Answer))
	}
	if r := query(t, s, "udp", "big.example", mdns.TypeTXT); !r.Truncated {
		t.Errorf("TXT over UDP not truncated (%d answers)", len(r.Answer))
	}

	// Set replaces the table.
	if err := s.Set(&Config{Services: map[string]netip.Addr{"api": netip.MustParseAddr("10.43.1.1")}}); err != nil {
		t.Fatal(err)
	}
	if r := query(t, s, "udp", "web.warren.local", mdns.TypeA); r.Rcode != mdns.RcodeNameError {
		t.Errorf("removed service still resolves: %v", r)
	}
	if r := query(t, s, "udp", "api", mdns.TypeA); aRecords(r) != "10.43.1.1" {
		t.Errorf("new service: %v", r)
	}
}

func TestServerUpstreamDown(t *testing.T) {
	// A bound but silent UDP socket: the forwarder must time out and answer
	// SERVFAIL rather than hang or drop the query.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	s := startServer(t, pc.LocalAddr().String())
	if r := query(t, s, "udp", "example.org", mdns.TypeA); r.Rcode != mdns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", mdns.RcodeToString[r.Rcode])
	}
	// Our own names do not depend on the upstream.
	if r := query(t, s, "udp", "db.warren.local", mdns.TypeA); aRecords(r) != "10.43.0.11" {
		t.Fatalf("db: %v", r)
	}
}

func TestAnswerSafely(t *testing.T) {
	req := new(mdns.Msg)
	req.SetQuestion("web.warren.local.", mdns.TypeA)
	m := answerSafely(req, zap.NewNop(), func() *mdns.Msg { panic("a bug") })
	if m == nil || m.Rcode != mdns.RcodeServerFailure || m.Id != req.Id {
		t.Fatalf("a panicking answer gave %v, want SERVFAIL to the query", m)
	}
	ok := new(mdns.Msg)
	ok.SetReply(req)
	if got := answerSafely(req, zap.NewNop(), func() *mdns.Msg { return ok }); got != ok {
		t.Fatalf("answerSafely replaced a good answer: %v", got)
	}
}
