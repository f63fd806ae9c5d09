package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
	"go.uber.org/zap"
)

// Defaults.
const (
	DefaultDomain     = "warren.local"
	DefaultListenAddr = "10.42.0.1:53" // the agent passes its bridge gateway
	resolvConf        = "/etc/resolv.conf"
	upstreamTimeout   = 2 * time.Second
)

// Options configure a Server.
type Options struct {
	ListenAddr string   // host:port; port 0 picks one (tests)
	Domain     string   // default warren.local
	Upstreams  []string // host:port; default: nameservers of /etc/resolv.conf
	// ReusePort lets a successor bind the address while this server still
	// serves it (the device process's hand-over).
	ReusePort bool
	Logger    *zap.Logger
}

// Server answers service names over UDP and TCP on one address.
type Server struct {
	opts      Options
	domain    string
	upstreams []string
	log       *zap.Logger
	table     atomic.Pointer[table]

	mu      sync.Mutex
	udp     *mdns.Server
	tcp     *mdns.Server
	addr    netip.AddrPort
	started bool
}

// New validates opts and returns a stopped server with an empty table.
func New(opts Options) (*Server, error) {
	if opts.ListenAddr == "" {
		opts.ListenAddr = DefaultListenAddr
	}
	if _, err := netip.ParseAddrPort(opts.ListenAddr); err != nil {
		return nil, fmt.Errorf("dns: listen address: %w", err)
	}
	if opts.Domain == "" {
		opts.Domain = DefaultDomain
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	domain := normName(opts.Domain)
	if !validName(domain) {
		return nil, fmt.Errorf("dns: invalid domain %q", opts.Domain)
	}
	ups := opts.Upstreams
	if len(ups) == 0 {
		ups = upstreamsFromResolvConf(resolvConf)
	}
	ups, err := normUpstreams(ups, opts.ListenAddr)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, domain: domain, upstreams: ups, log: opts.Logger}
	s.table.Store(&table{services: map[string]netip.Addr{}, tasks: map[string][]netip.Addr{}})
	return s, nil
}

// normUpstreams adds the default port and drops the server's own address,
// which a resolv.conf pointing at this node would otherwise loop through.
func normUpstreams(in []string, self string) ([]string, error) {
	var out []string
	for _, u := range in {
		if _, _, err := net.SplitHostPort(u); err != nil {
			u = net.JoinHostPort(strings.Trim(u, "[]"), "53")
		}
		if _, err := netip.ParseAddrPort(u); err != nil {
			return nil, fmt.Errorf("dns: upstream %q: %w", u, err)
		}
		if u == self {
			continue
		}
		out = append(out, u)
	}
	return out, nil
}

func upstreamsFromResolvConf(path string) []string {
	cc, err := mdns.ClientConfigFromFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, s := range cc.Servers {
		out = append(out, net.JoinHostPort(s, cc.Port))
	}
	return out
}

// Set replaces the name table.
func (s *Server) Set(c *Config) error {
	t, err := newTable(c)
	if err != nil {
		return err
	}
	s.table.Store(t)
	return nil
}

// Start binds UDP and TCP on the listen address (in the calling thread's
// network namespace) and serves in the background.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("dns: already started")
	}
	pc, ln, err := listenBoth(s.opts.ListenAddr, s.opts.ReusePort)
	if err != nil {
		return err
	}
	s.addr = netip.MustParseAddrPort(pc.LocalAddr().String())
	h := mdns.HandlerFunc(s.serveDNS)
	s.udp = &mdns.Server{PacketConn: pc, Handler: h}
	s.tcp = &mdns.Server{Listener: ln, Handler: h}
	var ready sync.WaitGroup
	ready.Add(2)
	s.udp.NotifyStartedFunc = ready.Done
	s.tcp.NotifyStartedFunc = ready.Done
	for _, srv := range []*mdns.Server{s.udp, s.tcp} {
		go func() {
			if err := srv.ActivateAndServe(); err != nil {
				s.log.Error("dns server stopped", zap.Error(err))
			}
		}()
	}
	ready.Wait()
	s.started = true
	return nil
}

// listenBoth binds UDP and TCP on the same port; with port 0 the TCP bind
// follows the port the kernel gave UDP and retries if it was taken.
func listenBoth(addr string, reuse bool) (net.PacketConn, net.Listener, error) {
	ap := netip.MustParseAddrPort(addr)
	lc := net.ListenConfig{}
	if reuse {
		lc.Control = reusePort
	}
	ctx := context.Background()
	var lastErr error
	for try := 0; try < 10; try++ {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dns: listen udp %s: %w", addr, err)
		}
		port := netip.MustParseAddrPort(pc.LocalAddr().String()).Port()
		ln, err := lc.Listen(ctx, "tcp", netip.AddrPortFrom(ap.Addr(), port).String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		lastErr = err
		if ap.Port() != 0 {
			break
		}
	}
	return nil, nil, fmt.Errorf("dns: listen tcp %s: %w", addr, lastErr)
}

// Addr is the bound address once started.
func (s *Server) Addr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Close stops serving.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		return nil
	}
	s.started = false
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return errors.Join(s.udp.ShutdownContext(ctx), s.tcp.ShutdownContext(ctx))
}

func (s *Server) serveDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	resp := answerSafely(req, s.log, func() *mdns.Msg {
		return s.handle(req, w.RemoteAddr().Network(), clientAddr(w.RemoteAddr()))
	})
	if err := w.WriteMsg(resp); err != nil {
		s.log.Debug("dns write", zap.Error(err))
	}
}

// answerSafely is answer(), or SERVFAIL when it panics: a query that
// finds a bug must not take the process down, which on most nodes also
// serves the node's userspace WireGuard device (dataplane/nodedevice).
func answerSafely(req *mdns.Msg, log *zap.Logger, answer func() *mdns.Msg) (m *mdns.Msg) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("dns query panicked; answered SERVFAIL", zap.Any("panic", r), zap.Stringer("query", req))
			m = new(mdns.Msg)
			m.SetRcode(req, mdns.RcodeServerFailure)
		}
	}()
	return answer()
}

// clientAddr is the querying task's address, which selects its aliases.
func clientAddr(a net.Addr) netip.Addr {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// handle answers one request; network is "udp" or "tcp" (of the client).
func (s *Server) handle(req *mdns.Msg, network string, client netip.Addr) *mdns.Msg {
	if req.Opcode != mdns.OpcodeQuery || len(req.Question) != 1 {
		m := new(mdns.Msg)
		m.SetRcode(req, mdns.RcodeNotImplemented)
		return m
	}
	q := req.Question[0]
	v, addrs, ttl := s.table.Load().resolve(s.domain, q.Name, client)
	if v == forward || q.Qclass != mdns.ClassINET {
		return s.forward(req, network)
	}
	m := new(mdns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = len(s.upstreams) > 0
	if v == nxdomain {
		m.Rcode = mdns.RcodeNameError
		m.Ns = []mdns.RR{soa(s.domain)}
		return m
	}
	if q.Qtype == mdns.TypeA || q.Qtype == mdns.TypeANY {
		for _, a := range addrs {
			m.Answer = append(m.Answer, &mdns.A{
				Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: ttl},
				A:   a.AsSlice(),
			})
		}
	}
	if len(m.Answer) == 0 {
		// NODATA (e.g. AAAA of a service): the name exists, so no NXDOMAIN,
		// which would make the client drop the A answer too.
		m.Ns = []mdns.RR{soa(s.domain)}
	}
	if network == "udp" {
		m.Truncate(udpSize(req))
	}
	return m
}

func udpSize(req *mdns.Msg) int {
	if o := req.IsEdns0(); o != nil {
		return int(o.UDPSize())
	}
	return mdns.MinMsgSize
}

// forward asks each upstream in turn; a truncated UDP answer is retried over
// TCP, as a stub resolver would.
func (s *Server) forward(req *mdns.Msg, network string) *mdns.Msg {
	var lastErr error
	for _, up := range s.upstreams {
		c := &mdns.Client{Net: network, Timeout: upstreamTimeout}
		resp, _, err := c.Exchange(req, up)
		if err == nil && resp.Truncated && network == "udp" {
			c.Net = "tcp"
			if r2, _, err2 := c.Exchange(req, up); err2 == nil {
				resp = r2
				resp.Truncate(udpSize(req))
			}
		}
		if err != nil {
			lastErr = err
			continue
		}
		resp.Id = req.Id
		return resp
	}
	if lastErr != nil {
		s.log.Debug("dns forward failed", zap.String("name", req.Question[0].Name), zap.Error(lastErr))
	}
	m := new(mdns.Msg)
	m.SetRcode(req, mdns.RcodeServerFailure)
	return m
}
