package apiserver

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestLeaseDecision(t *testing.T) {
	t0 := testNow
	const lease = 100 * time.Millisecond
	for _, tc := range []struct {
		name         string
		arrival      time.Time
		until        time.Time
		serve, renew bool
	}{
		{"no lease yet", t0, time.Time{}, false, true},
		{"fresh lease", t0, t0.Add(lease), true, false},
		{"exactly half left", t0.Add(lease / 2), t0.Add(lease), true, false},
		{"less than half left: serve and renew", t0.Add(lease/2 + 1), t0.Add(lease), true, true},
		{"arrived as the lease ends", t0.Add(lease), t0.Add(lease), false, true},
		{"arrived after the lease", t0.Add(2 * lease), t0.Add(lease), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serve, renew := leaseDecision(tc.arrival, tc.until, lease)
			if serve != tc.serve || renew != tc.renew {
				t.Fatalf("leaseDecision = serve %v renew %v, want %v %v", serve, renew, tc.serve, tc.renew)
			}
		})
	}
}

// leaseBackend's VerifyLeader blocks until the test answers it, and counts
// its rounds; the clock is the test's.
type leaseBackend struct {
	*fakeBackend
	lease   time.Duration
	mu      sync.Mutex
	now     time.Time
	rounds  int
	answers chan error
	started chan struct{}
}

func (b *leaseBackend) ReadLease() time.Duration { return b.lease }
func (b *leaseBackend) VerifyLeader(ctx context.Context) error {
	b.mu.Lock()
	b.rounds++
	b.mu.Unlock()
	b.started <- struct{}{}
	select {
	case err := <-b.answers:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
func (b *leaseBackend) clock() time.Time { b.mu.Lock(); defer b.mu.Unlock(); return b.now }
func (b *leaseBackend) set(d time.Duration) {
	b.mu.Lock()
	b.now = testNow.Add(d)
	b.mu.Unlock()
}
func (b *leaseBackend) roundCount() int { b.mu.Lock(); defer b.mu.Unlock(); return b.rounds }

func newLeaseServer() (*Server, *leaseBackend) {
	b := &leaseBackend{lease: 100 * time.Millisecond, now: testNow, answers: make(chan error), started: make(chan struct{}, 16)}
	return &Server{b: b, lease: readGate{now: b.clock}}, b
}

// reads starts n reads and returns their results once all are done.
func reads(s *Server, n int) <-chan []error {
	out := make(chan []error, 1)
	go func() {
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = s.verifyRead(context.Background()) }()
		}
		wg.Wait()
		out <- errs
	}()
	return out
}

func allNil(t *testing.T, errs []error) {
	t.Helper()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
	}
}

func TestVerifyReadSharesOneRoundAndServesWithinTheLease(t *testing.T) {
	s, b := newLeaseServer()
	// Twenty reads without a lease: one round answers all of them.
	done := reads(s, 20)
	<-b.started
	b.answers <- nil
	allNil(t, <-done)
	if got := b.roundCount(); got != 1 {
		t.Fatalf("20 reads without a lease made %d rounds, want 1", got)
	}

	// Within the first half of the lease: no round at all.
	b.set(40 * time.Millisecond)
	allNil(t, <-reads(s, 5))
	if got := b.roundCount(); got != 1 {
		t.Fatalf("reads inside the lease made %d rounds, want still 1", got)
	}

	// In the second half: served at once while a renewal round runs.
	b.set(60 * time.Millisecond)
	allNil(t, <-reads(s, 5))
	<-b.started
	if got := b.roundCount(); got != 2 {
		t.Fatalf("reads in the lease's second half made %d rounds, want a renewal (2)", got)
	}

	// Past the first lease but inside the one the running renewal (begun
	// at 60 ms) will grant, with more than half of it left: the read waits
	// for the renewal, then is served without another.
	b.set(105 * time.Millisecond)
	late := reads(s, 1)
	select {
	case errs := <-late:
		t.Fatalf("a read after the lease ended was answered before the renewal: %v", errs)
	case <-time.After(20 * time.Millisecond):
	}
	b.answers <- nil
	allNil(t, <-late)
	if got := b.roundCount(); got != 2 {
		t.Fatalf("rounds = %d, want 2: the renewal's lease covers the read", got)
	}
}

func TestVerifyReadAfterTheLeaseNeedsARoundThatBeganLater(t *testing.T) {
	s, b := newLeaseServer()
	done := reads(s, 1)
	<-b.started
	b.answers <- nil
	allNil(t, <-done)

	// A renewal begins at 60 ms and is slow; a read arriving at 200 ms is
	// past both leases (the renewal grants until 160 ms), so the renewal's
	// success does not answer it: it needs a round of its own.
	b.set(60 * time.Millisecond)
	allNil(t, <-reads(s, 1))
	<-b.started
	b.set(200 * time.Millisecond)
	late := reads(s, 1)
	b.answers <- nil
	<-b.started
	if got := b.roundCount(); got != 3 {
		t.Fatalf("rounds = %d, want 3: the read after both leases needs its own", got)
	}
	b.answers <- nil
	allNil(t, <-late)
}

func TestVerifyReadFailureEndsTheLease(t *testing.T) {
	s, b := newLeaseServer()
	noQuorum := errors.New("no quorum")
	done := reads(s, 1)
	<-b.started
	b.answers <- noQuorum
	for i, err := range <-done {
		if !errors.Is(err, noQuorum) {
			t.Fatalf("read %d: err %v, want the round's %v", i, err, noQuorum)
		}
	}
	// A lease that was granted, then a failed renewal, ends at once.
	done = reads(s, 1)
	<-b.started
	b.answers <- nil
	allNil(t, <-done)
	b.set(60 * time.Millisecond)
	allNil(t, <-reads(s, 1))
	<-b.started
	b.answers <- noQuorum
	waitFor(t, func() bool { s.lease.mu.Lock(); defer s.lease.mu.Unlock(); return s.lease.round == nil })
	b.set(61 * time.Millisecond)
	again := reads(s, 1)
	<-b.started
	b.answers <- nil
	allNil(t, <-again)
	if got := b.roundCount(); got != 4 {
		t.Fatalf("rounds = %d, want 4: after a failed renewal the next read verifies afresh", got)
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}
