// Package proxy is the userspace implementation of the dataplane contract,
// the fallback where eBPF is not supported (macOS, WSL2, old kernels).
// Dataplane turns a dataplane.Config into frontends with the same slot table
// code the eBPF implementation uses; Proxy, the forwarding engine, knows
// nothing about services, weights or health: it runs TCP and UDP listeners,
// each with a slot table of targets.
//
// It imports the contract (dataplane) and, to put VIPs on an interface,
// netlink (Linux only); nothing of eBPF.
package proxy

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Frontend is one listener and where its connections go.
type Frontend struct {
	Network string // "tcp" or "udp"
	Listen  netip.AddrPort
	Service string
	Slots   []Target // picked uniformly; empty = refuse at once
}

// Target is a backend endpoint.
type Target struct {
	ID   string
	Addr netip.AddrPort
}

// Stats are cumulative per-service counts.
type Stats struct {
	Connections, Drops uint64
	Backends           map[string]uint64
	// Errors are the TCP connections to a target that failed, by target
	// ID; targets without failures are missing.
	Errors map[string]TargetErrors
}

// TargetErrors count how TCP connections to one target failed.
type TargetErrors struct {
	ConnectFailures uint64 // the proxy's dial did not connect
	Resets          uint64 // the target reset the connection once established
}

// Proxy forwards connections for a set of frontends.
type Proxy struct {
	mu        sync.Mutex
	listeners map[key]*listener
	stats     map[string]*Stats
	// UDPIdle ends a UDP session after this long without a reply.
	UDPIdle time.Duration
}

type key struct {
	network string
	addr    netip.AddrPort
}

type listener struct {
	slots   atomic.Pointer[[]Target]
	service atomic.Pointer[string]
	tcp     *net.TCPListener
	udp     *net.UDPConn
	done    chan struct{}
}

// New returns a proxy with no frontends.
func New() *Proxy {
	return &Proxy{listeners: map[key]*listener{}, stats: map[string]*Stats{}, UDPIdle: 60 * time.Second}
}

// Set makes the proxy listen on exactly fronts. Existing listeners keep
// their sockets and open connections; only their slot table is swapped, so
// new weights apply to new connections only.
func (p *Proxy) Set(fronts []Frontend) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	want := map[key]Frontend{}
	for _, f := range fronts {
		want[key{f.Network, f.Listen}] = f
	}
	for k, l := range p.listeners {
		if _, ok := want[k]; !ok {
			l.close()
			delete(p.listeners, k)
		}
	}
	var errs []error
	for k, f := range want {
		l := p.listeners[k]
		if l == nil {
			var err error
			if l, err = p.listen(f); err != nil {
				errs = append(errs, fmt.Errorf("listen %s %v: %w", f.Network, f.Listen, err))
				continue
			}
			p.listeners[k] = l
		}
		slots := append([]Target(nil), f.Slots...)
		svc := f.Service
		l.slots.Store(&slots)
		l.service.Store(&svc)
	}
	return errors.Join(errs...)
}

// Close stops all listeners. Open TCP connections run to completion.
func (p *Proxy) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, l := range p.listeners {
		l.close()
		delete(p.listeners, k)
	}
	return nil
}

// Stats returns a copy of the per-service counters.
func (p *Proxy) Stats() map[string]Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]Stats{}
	for s, st := range p.stats {
		c := *st
		c.Backends = map[string]uint64{}
		for b, n := range st.Backends {
			c.Backends[b] = n
		}
		c.Errors = map[string]TargetErrors{}
		for b, e := range st.Errors {
			c.Errors[b] = e
		}
		out[s] = c
	}
	return out
}

func (p *Proxy) count(svc string, t *Target) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.stats[svc]
	if st == nil {
		st = &Stats{Backends: map[string]uint64{}}
		p.stats[svc] = st
	}
	if t == nil {
		st.Drops++
		return
	}
	st.Connections++
	st.Backends[t.ID]++
}

// countError records a failed connection to t (refused: a connect failure,
// else a reset).
func (p *Proxy) countError(svc string, t Target, refused bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.stats[svc]
	if st == nil {
		st = &Stats{Backends: map[string]uint64{}}
		p.stats[svc] = st
	}
	if st.Errors == nil {
		st.Errors = map[string]TargetErrors{}
	}
	e := st.Errors[t.ID]
	if refused {
		e.ConnectFailures++
	} else {
		e.Resets++
	}
	st.Errors[t.ID] = e
}

func (l *listener) pick() *Target {
	s := *l.slots.Load()
	if len(s) == 0 {
		return nil
	}
	return &s[rand.IntN(len(s))]
}

func (l *listener) close() {
	close(l.done)
	if l.tcp != nil {
		l.tcp.Close()
	}
	if l.udp != nil {
		l.udp.Close()
	}
}

func (p *Proxy) listen(f Frontend) (*listener, error) {
	l := &listener{done: make(chan struct{})}
	switch f.Network {
	case "tcp":
		ln, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(f.Listen))
		if err != nil {
			return nil, err
		}
		l.tcp = ln
		go p.serveTCP(l)
	case "udp":
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(f.Listen))
		if err != nil {
			return nil, err
		}
		l.udp = c
		go p.serveUDP(l)
	default:
		return nil, fmt.Errorf("network %q", f.Network)
	}
	return l, nil
}

func (p *Proxy) serveTCP(l *listener) {
	for {
		c, err := l.tcp.AcceptTCP()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			time.Sleep(10 * time.Millisecond) // e.g. EMFILE: back off, keep serving
			continue
		}
		t := l.pick()
		p.count(*l.service.Load(), t)
		if t == nil {
			// Fail fast: a reset, not a hang.
			c.SetLinger(0)
			c.Close()
			continue
		}
		svc, target := *l.service.Load(), *t
		go func() {
			if refused, failed := forwardTCP(c, target.Addr); failed {
				p.countError(svc, target, refused)
			}
		}()
	}
}

// forwardTCP copies between the client c and a new connection to the
// target, and says whether that connection failed: refused when the dial
// did not connect. A reset by the target is passed on to the client as a
// reset, as the kernel balancer's clients see it.
func forwardTCP(c *net.TCPConn, to netip.AddrPort) (refused, failed bool) {
	defer c.Close()
	b, err := net.DialTCP("tcp4", nil, net.TCPAddrFromAddrPort(to))
	if err != nil {
		c.SetLinger(0)
		return true, true
	}
	defer b.Close()
	done := make(chan struct{})
	go func() {
		// *net.TCPConn to *net.TCPConn: io.Copy splices on Linux.
		io.Copy(b, c)
		b.CloseWrite()
		close(done)
	}()
	_, err = io.Copy(c, b)
	if errors.Is(err, syscall.ECONNRESET) {
		c.SetLinger(0)
		c.Close()
		<-done
		return false, true
	}
	c.CloseWrite()
	<-done
	return false, false
}

func (p *Proxy) serveUDP(l *listener) {
	var mu sync.Mutex
	sessions := map[netip.AddrPort]*net.UDPConn{}
	buf := make([]byte, 64<<10)
	for {
		n, from, err := l.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			select {
			case <-l.done:
				mu.Lock()
				for _, s := range sessions {
					s.Close()
				}
				mu.Unlock()
				return
			default:
				continue
			}
		}
		mu.Lock()
		s := sessions[from]
		mu.Unlock()
		if s == nil {
			t := l.pick()
			p.count(*l.service.Load(), t)
			if t == nil {
				continue // no backend: nothing to send to; the client times out or gets ICMP from nowhere
			}
			s, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(t.Addr))
			if err != nil {
				continue
			}
			mu.Lock()
			sessions[from] = s
			mu.Unlock()
			go func() {
				// Replies leave from the listener socket, so they come from
				// the frontend address the client sent to.
				rb := make([]byte, 64<<10)
				for {
					s.SetReadDeadline(time.Now().Add(p.UDPIdle))
					k, err := s.Read(rb)
					if err != nil {
						break
					}
					l.udp.WriteToUDPAddrPort(rb[:k], from)
				}
				mu.Lock()
				delete(sessions, from)
				mu.Unlock()
				s.Close()
			}()
		}
		s.Write(buf[:n])
	}
}
