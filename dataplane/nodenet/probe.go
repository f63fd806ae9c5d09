package nodenet

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// Peer health for a node that lost its managers (controlplane/agent's
// local.go): which other nodes its dataplane can still reach.
//
// The probe is a TCP connect to port 53 of the peer's gateway, its bridge
// address, over the mesh — the path every connection to the peer's
// backends takes. Either answer proves that path: the peer's DNS server
// accepting, or the peer's kernel refusing (RST) when warren is not running
// there, while its containers still serve. Only silence (a timeout, no
// route) counts against the peer.
//
// Probes run only while someone reads the records (the agent does while the
// node is cut off): a full mesh of 500 sites probing each other all the time
// would be 1,000 connects a second on every node for nothing. When probing
// resumes every record starts afresh, so a peer is never judged by silence
// from the time nobody asked.
//
// WireGuard's last-handshake time was the other candidate and is not used:
// a session is only renewed every two minutes, and only while traffic
// flows, so a handshake age cannot tell a dead peer from a quiet one in
// less than about three minutes — the whole of a short cut.

// PeerHealth is one peer's probe record: probed since Since, last answer
// LastOK (zero: none yet).
type PeerHealth struct {
	Since, LastOK time.Time
}

// Prober probes the node's mesh peers. Its zero value is not usable; make
// it with NewProber.
type Prober struct {
	dial    func(ctx context.Context, addr netip.AddrPort) error
	now     func() time.Time
	every   time.Duration
	timeout time.Duration

	mu      sync.Mutex
	targets map[string]netip.AddrPort // node ID → its gateway's DNS port
	health  map[string]PeerHealth
	asked   time.Time // the last Health call
	idle    bool      // no round since the records were last reset
}

// ProberOptions configure a Prober; zero values take the defaults.
type ProberOptions struct {
	// Dial connects to addr; nil dials TCP.
	Dial func(ctx context.Context, addr netip.AddrPort) error
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Every is the probe interval (500ms), Timeout one probe's limit (1s).
	Every, Timeout time.Duration
}

// idleAfter is how long after the last Health call probing goes on.
const idleAfter = 5 * time.Second

// NewProber makes a Prober with no peers.
func NewProber(o ProberOptions) *Prober {
	if o.Dial == nil {
		o.Dial = dialTCP
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Every <= 0 {
		o.Every = 500 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	return &Prober{dial: o.Dial, now: o.Now, every: o.Every, timeout: o.Timeout,
		targets: map[string]netip.AddrPort{}, health: map[string]PeerHealth{}, idle: true}
}

func dialTCP(ctx context.Context, addr netip.AddrPort) error {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr.String())
	if err == nil {
		c.Close()
	}
	return err
}

// answered reads a probe's result: a connection or a refusal is an answer.
func answered(err error) bool { return err == nil || errors.Is(err, syscall.ECONNREFUSED) }

// SetPeers makes the assignments' peers the ones probed. A peer keeps its
// record while it stays; a new one is judged from now.
func (p *Prober) SetPeers(a *api.Assignments) {
	want := map[string]netip.AddrPort{}
	for _, peer := range a.Peers {
		if peer.NodeID == a.NodeID {
			continue
		}
		gw, err := Gateway(api.ClusterNetwork{Subnet: peer.Subnet})
		if err != nil {
			continue
		}
		want[peer.NodeID] = netip.AddrPortFrom(gw, 53)
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for id := range p.health {
		if _, ok := want[id]; !ok {
			delete(p.health, id)
		}
	}
	for id, to := range want {
		if old, ok := p.targets[id]; !ok || old != to {
			p.health[id] = PeerHealth{Since: now}
		}
	}
	p.targets = want
}

// Health returns every probed peer's record, by node ID, and keeps the
// probes going for a while.
func (p *Prober) Health() map[string]PeerHealth {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.asked = p.now()
	if p.idle {
		p.resume()
	}
	out := make(map[string]PeerHealth, len(p.health))
	for id, h := range p.health {
		out[id] = h
	}
	return out
}

// resume starts every record afresh. Call with p.mu held.
func (p *Prober) resume() {
	now := p.now()
	for id := range p.health {
		p.health[id] = PeerHealth{Since: now}
	}
	p.idle = false
}

// Round probes every peer once, in parallel, and records who answered —
// unless nobody asked for the records lately.
func (p *Prober) Round(ctx context.Context) {
	p.mu.Lock()
	if p.idle || p.now().Sub(p.asked) > idleAfter {
		p.idle = true
		p.mu.Unlock()
		return
	}
	targets := make(map[string]netip.AddrPort, len(p.targets))
	for id, to := range p.targets {
		targets[id] = to
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := map[string]netip.AddrPort{}
	for id, to := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, p.timeout)
			defer cancel()
			if answered(p.dial(pctx, to)) {
				mu.Lock()
				ok[id] = to
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, to := range ok {
		// Only if the peer is still the one probed: SetPeers may have moved
		// it meanwhile.
		if h, still := p.health[id]; still && p.targets[id] == to {
			h.LastOK = now
			p.health[id] = h
		}
	}
}

// Run probes every Every until ctx ends.
func (p *Prober) Run(ctx context.Context) {
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		p.Round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
