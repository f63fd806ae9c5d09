package nodenet

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// fakeNet answers probes by target: nil (accepted), ECONNREFUSED (the
// peer's kernel refused) or a timeout.
type fakeNet struct {
	mu      sync.Mutex
	answers map[netip.AddrPort]error
	dialed  []netip.AddrPort
}

func (f *fakeNet) dial(_ context.Context, to netip.AddrPort) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dialed = append(f.dialed, to)
	if err, ok := f.answers[to]; ok {
		return err
	}
	return context.DeadlineExceeded
}

func peers(ids ...string) *api.Assignments {
	a := &api.Assignments{NodeID: "me"}
	for i, id := range ids {
		a.Peers = append(a.Peers, api.Peer{NodeID: id, Subnet: fmt.Sprintf("10.42.%d.0/24", i+1)})
	}
	return a
}

func TestProber(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	now := t0
	refused := fmt.Errorf("dial tcp: %w", syscall.ECONNREFUSED)
	net := &fakeNet{answers: map[netip.AddrPort]error{
		netip.MustParseAddrPort("10.42.1.1:53"): nil,     // n1's DNS answers
		netip.MustParseAddrPort("10.42.2.1:53"): refused, // n2's warren is down, its kernel is not
		// n3 (10.42.3.1) is silent
	}}
	p := NewProber(ProberOptions{Dial: net.dial, Now: func() time.Time { return now }})
	a := peers("n1", "n2", "n3")
	a.Peers = append(a.Peers, api.Peer{NodeID: "me", Subnet: "10.42.9.0/24"}, api.Peer{NodeID: "bad", Subnet: "nonsense"})
	p.SetPeers(a)
	now = t0.Add(time.Second)
	p.Round(context.Background())
	if len(net.dialed) != 0 {
		t.Fatalf("probed %v before anybody asked", net.dialed)
	}
	now = t0
	if h := p.Health(); len(h) != 3 {
		t.Fatalf("records %v, want n1, n2 and n3", h)
	}
	now = t0.Add(time.Second)
	p.Round(context.Background())

	h := p.Health()
	want := map[string]PeerHealth{
		"n1": {Since: t0, LastOK: t0.Add(time.Second)},
		"n2": {Since: t0, LastOK: t0.Add(time.Second)},
		"n3": {Since: t0},
	}
	if fmt.Sprint(h) != fmt.Sprint(want) {
		t.Fatalf("after one round\n got %v\nwant %v", h, want)
	}
	if len(net.dialed) != 3 {
		t.Errorf("dialed %v, want the gateways of n1, n2 and n3 only (not this node, not a peer without a subnet)", net.dialed)
	}

	// n1 goes silent, n3 answers: each record moves on its own.
	net.mu.Lock()
	delete(net.answers, netip.MustParseAddrPort("10.42.1.1:53"))
	net.answers[netip.MustParseAddrPort("10.42.3.1:53")] = nil
	net.mu.Unlock()
	now = t0.Add(5 * time.Second)
	p.Round(context.Background())
	h = p.Health()
	if h["n1"].LastOK != t0.Add(time.Second) || h["n3"].LastOK != now || h["n2"].LastOK != now {
		t.Errorf("after the second round: %v", h)
	}

	// Nobody asks for a while: probing stops; when it is asked again every
	// record starts afresh rather than counting the idle time as silence.
	now = now.Add(idleAfter + time.Second)
	dialed := len(net.dialed)
	p.Round(context.Background())
	if len(net.dialed) != dialed {
		t.Errorf("probed while nobody asked")
	}
	resumed := now
	if h := p.Health(); h["n3"] != (PeerHealth{Since: resumed}) || h["n1"] != (PeerHealth{Since: resumed}) {
		t.Errorf("records not started afresh on resume: %v", h)
	}
	p.Round(context.Background())
	if h := p.Health(); h["n3"].LastOK != resumed || !h["n1"].LastOK.IsZero() {
		t.Errorf("after resuming: %v", h)
	}

	// A peer that leaves the assignments is forgotten; one that moves to
	// another subnet is judged afresh.
	a = peers("n1", "n2")
	a.Peers[1].Subnet = "10.42.7.0/24"
	p.SetPeers(a)
	h = p.Health()
	if _, ok := h["n3"]; ok {
		t.Errorf("n3 left the assignments but is still probed: %v", h)
	}
	if h["n2"] != (PeerHealth{Since: now}) {
		t.Errorf("n2 moved subnets and kept its old record: %v", h["n2"])
	}
	if h["n1"] != (PeerHealth{Since: resumed}) {
		t.Errorf("n1 stayed but lost its record: %v", h["n1"])
	}
}

func TestProbeAnswered(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, true},
		{fmt.Errorf("connect: %w", syscall.ECONNREFUSED), true},
		{context.DeadlineExceeded, false},
		{fmt.Errorf("connect: %w", syscall.EHOSTUNREACH), false},
	} {
		if got := answered(c.err); got != c.want {
			t.Errorf("answered(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
