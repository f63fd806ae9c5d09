package agent

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/testutil"
)

// tables records the whole assignments every SetNetwork got.
type tables struct {
	recorder
	mu2  sync.Mutex
	seen []*api.Assignments
}

func (r *tables) SetNetwork(ctx context.Context, a *api.Assignments) error {
	r.mu2.Lock()
	r.seen = append(r.seen, a)
	r.mu2.Unlock()
	return r.recorder.SetNetwork(ctx, a)
}

func (r *tables) last() string {
	r.mu2.Lock()
	defer r.mu2.Unlock()
	if len(r.seen) == 0 {
		return ""
	}
	return fmt.Sprintf("%d: %s", r.seen[len(r.seen)-1].Index, backends(r.seen[len(r.seen)-1]))
}

// peerSet is a settable Peers source.
type peerSet struct {
	mu sync.Mutex
	h  map[string]PeerHealth
}

func (p *peerSet) set(id string, h PeerHealth) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.h[id] = h
}

func (p *peerSet) get() map[string]PeerHealth {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]PeerHealth{}
	for k, v := range p.h {
		out[k] = v
	}
	return out
}

// The whole cut through the agent: the managers' table while they answer;
// the node's own once they are gone (a silent peer's backends out, a local
// restart at its new address at once); the managers' again once they are
// back, their table accounts for the restart and the peer answers.
func TestCutOffTable(t *testing.T) {
	as := table(4, "l1@me=10.42.2.2/a", "r1@n1=10.42.1.2/a")
	f := newFakeManager(t, *as)
	f.mu.Lock()
	f.assign.Managers = []string{f.addr()}
	f.mu.Unlock()
	peers := &peerSet{h: map[string]PeerHealth{}}
	var n1Silent sync.Mutex // held while n1 does not answer
	stop := make(chan struct{})
	defer close(stop)
	go func() { // n1 answers every 5ms unless silenced
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			n1Silent.Lock()
			now := time.Now()
			peers.set("n1", PeerHealth{Since: now.Add(-time.Hour), LastOK: now})
			n1Silent.Unlock()
		}
	}()
	rec := &tables{}
	a, err := New(Config{
		NodeID: "me", DataDir: t.TempDir(), Manager: newClient(t, f, f.addr()), Executor: rec, Network: rec,
		Registration: func() api.NodeRegistration { return api.NodeRegistration{} },
		Heartbeat:    20 * time.Millisecond, Wait: 200 * time.Millisecond,
		RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond,
		Peers: peers.get, PeerDown: 100 * time.Millisecond, LocalTick: 5 * time.Millisecond, Handover: time.Hour,
		CutAfter: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; a.Close() })
	a.Report("l1", runs("10.42.2.2"))

	want := "4: l1@me=10.42.2.2/a r1@n1=10.42.1.2/a"
	testutil.Eventually(t, "the managers' table is applied", 15*time.Second, func() bool { return rec.last() == want })

	// The cut: the managers are gone, and so is n1 (silent from now on).
	f.setDown(true)
	n1Silent.Lock()
	want = "4: l1@me=10.42.2.2/a r1@n1=10.42.1.2/u"
	testutil.Eventually(t, "n1's backend leaves the node's own table", 15*time.Second, func() error {
		if got := rec.last(); got != want {
			return fmt.Errorf("table %s, want %s", got, want)
		}
		return nil
	})
	a.Report("l1", runs("10.42.2.9")) // restarted in place, new address
	want = "4: l1@me=10.42.2.9/a r1@n1=10.42.1.2/u"
	testutil.Eventually(t, "the restarted task is in the table at its new address", 15*time.Second, func() error {
		if got := rec.last(); got != want {
			return fmt.Errorf("table %s, want %s", got, want)
		}
		return nil
	})

	// Back. The managers' table must be fresh (account for the restart)
	// and usable (n1 answers) before it wins: first a fresh one while n1
	// is silent, then a stale one, n1 answers, and a fresh one again.
	f.setDown(false)
	fresh := func(index uint64) *api.Assignments {
		a := table(index, "l1@me=10.42.2.9/a", "r1@n1=10.42.1.2/a")
		a.Tasks[0].Status.Addr = "10.42.2.9"
		return a
	}
	step := func(what, want string) {
		t.Helper()
		testutil.Eventually(t, what, 15*time.Second, func() error {
			if got := rec.last(); got != want {
				return fmt.Errorf("table %s, want %s", got, want)
			}
			a.mu.Lock()
			defer a.mu.Unlock()
			if !a.auto.local() {
				return fmt.Errorf("the node no longer decides alone")
			}
			return nil
		})
	}
	f.publish(*fresh(6))
	step("index 6 is fresh, but n1 is silent: still the node's own table", "6: l1@me=10.42.2.9/a r1@n1=10.42.1.2/u")
	stale := table(7, "l1@me=10.42.2.2/a", "r1@n1=10.42.1.2/a")
	f.publish(*stale)
	step("index 7 is stale and n1 silent: the node's own table", "7: l1@me=10.42.2.9/a r1@n1=10.42.1.2/u")
	n1Silent.Unlock()
	step("n1 answers, but index 7 is stale: still the node's own table", "7: l1@me=10.42.2.9/a r1@n1=10.42.1.2/a")
	rec.mu2.Lock()
	for _, seen := range rec.seen {
		if b := backends(seen); seen.Index == 7 && b == backends(stale) {
			t.Errorf("index 7 was applied as the managers sent it, without the restart: %s", b)
		}
	}
	rec.mu2.Unlock()
	f.publish(*fresh(8))
	want = "8: l1@me=10.42.2.9/a r1@n1=10.42.1.2/a"
	testutil.Eventually(t, "the managers' table wins once fresh and usable", 15*time.Second, func() error {
		if got := rec.last(); got != want {
			return fmt.Errorf("table %s, want %s", got, want)
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.auto.local() {
			return fmt.Errorf("still deciding alone")
		}
		if a.offered != a.current {
			return fmt.Errorf("the applied table is not the managers' own")
		}
		return nil
	})
}

// The runtime's reports of tasks gone from the assignments are forgotten,
// except while cut off: a task held on rejoin is in no managers' table.
func TestLocalReportsPruned(t *testing.T) {
	a := newIdleAgent(t)
	a.Report("l1", runs("10.42.2.2"))
	a.Report("l2", runs("10.42.2.3"))
	a.auto.since = lt0 // cut off
	if err := a.accept(table(5, "l1@me=10.42.2.2/a")); err != nil {
		t.Fatal(err)
	}
	if len(a.local) != 2 {
		t.Fatalf("reports pruned while cut off: %v", a.local)
	}
	a.auto.since = time.Time{}
	if err := a.accept(table(6, "l1@me=10.42.2.2/a")); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.local["l2"]; ok || len(a.local) != 1 {
		t.Fatalf("reports after a connected accept: %v, want l1 only", a.local)
	}
}

type nopManager struct{}

func (nopManager) Register(context.Context, api.NodeRegistration) error { return nil }
func (nopManager) Assignments(context.Context, uint64, time.Duration) (*api.Assignments, error) {
	return nil, context.Canceled
}
func (nopManager) ReportStatus(context.Context, api.StatusReport) error { return nil }
func (nopManager) SetAddrs([]string)                                    {}

// Peer probes (which run while their records are read) start once a
// heartbeat is late, before a cut is declared, and not while the managers
// answer.
func TestProbesStartWithALateHeartbeat(t *testing.T) {
	f := newFakeManager(t, *table(4, "l1@me=10.42.2.2/a"))
	var mu sync.Mutex
	reads := 0
	a, err := New(Config{
		NodeID: "me", DataDir: t.TempDir(), Manager: newClient(t, f, f.addr()), Executor: &recorder{}, Network: &recorder{},
		Registration: func() api.NodeRegistration { return api.NodeRegistration{} },
		Heartbeat:    200 * time.Millisecond, Wait: 200 * time.Millisecond, RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond,
		CutAfter: time.Hour, LocalTick: 5 * time.Millisecond,
		Peers: func() map[string]PeerHealth { mu.Lock(); reads++; mu.Unlock(); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; a.Close() })
	testutil.Eventually(t, "10 heartbeats", 15*time.Second, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.register) >= 10
	})
	mu.Lock()
	n := reads
	mu.Unlock()
	if n != 0 {
		t.Fatalf("peer health read %d times while every heartbeat was answered", n)
	}
	f.setDown(true)
	testutil.Eventually(t, "peer health read once heartbeats are late", 15*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return reads > 0
	})
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.auto.local() {
		t.Fatal("a cut was declared; the probes should start before one")
	}
}

// While the node decides alone, publishing computes its own table without
// the lock heartbeats and the watch take: a heartbeat's bookkeeping goes on
// while a publish is still asking for the peers' health.
func TestPublishComputesOutsideTheLock(t *testing.T) {
	a := newIdleAgent(t)
	a.Report("l1", runs("10.42.2.2"))
	a.auto.since = lt0 // cut off
	if err := a.accept(table(5, "l1@me=10.42.2.2/a")); err != nil {
		t.Fatal(err)
	}
	asked, release := make(chan struct{}), make(chan struct{})
	a.cfg.Peers = func() map[string]PeerHealth {
		close(asked)
		<-release
		return nil
	}
	a.mu.Lock()
	a.offered = nil
	a.mu.Unlock()
	published := make(chan struct{})
	go func() { a.publish(); close(published) }()
	<-asked
	beat := make(chan struct{})
	go func() { a.answered(); a.TableIndex(); close(beat) }()
	select {
	case <-beat:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("a heartbeat's bookkeeping waited for the publish computing the node's own table")
	}
	close(release)
	<-published
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.offered == nil || a.offered.Index != 5 {
		t.Fatalf("offered %+v, want the node's own table at index 5", a.offered)
	}
}

// newIdleAgent is an agent that is not running, on managers that answer
// nothing, for tests that drive its state by hand.
func newIdleAgent(t *testing.T) *Agent {
	t.Helper()
	a, err := New(Config{NodeID: "me", DataDir: t.TempDir(), Manager: &nopManager{}, Executor: &recorder{}, Network: &recorder{},
		Registration: func() api.NodeRegistration { return api.NodeRegistration{} }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}
