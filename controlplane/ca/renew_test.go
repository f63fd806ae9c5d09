package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestRenewAtWindow(t *testing.T) {
	tests := []struct {
		name     string
		validity time.Duration
	}{
		{"90 days", 90 * 24 * time.Hour},
		{"1 hour", time.Hour},
		{"10 years", CAValidity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf := &x509.Certificate{NotBefore: t0, NotAfter: t0.Add(tt.validity)}
			lo, hi := 1.0, 0.0
			var buckets [3]int
			const n = 3000
			for seed := range uint64(n) {
				at := RenewAt(leaf, rng(seed))
				f := float64(at.Sub(t0)) / float64(tt.validity)
				if f < 0.5 || f > 0.8 {
					t.Fatalf("seed %d: renew at %.4f of validity, want in [0.5, 0.8]", seed, f)
				}
				lo, hi = min(lo, f), max(hi, f)
				buckets[min(int((f-0.5)/0.1), 2)]++
			}
			// Uniform over the window: the extremes are reached and each
			// third holds about a third of the samples.
			if lo > 0.505 || hi < 0.795 {
				t.Errorf("range [%.4f, %.4f], want close to [0.5, 0.8]", lo, hi)
			}
			for i, b := range buckets {
				if b < n/4 || b > n*5/12 {
					t.Errorf("bucket %d has %d of %d samples, want about a third", i, b, n)
				}
			}
		})
	}
	// Different seeds give different times: the jitter is real.
	leaf := &x509.Certificate{NotBefore: t0, NotAfter: t0.Add(90 * 24 * time.Hour)}
	if RenewAt(leaf, rng(1)).Equal(RenewAt(leaf, rng(2))) {
		t.Error("two seeds gave the same renewal time")
	}
}

// fakeClock hands every After to the test, which decides when it fires.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits chan fakeWait
}

type fakeWait struct {
	d  time.Duration
	ch chan time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	f.waits <- fakeWait{d, ch}
	return ch
}

// next waits for the renewer to sleep, moves time forward by the requested
// duration and wakes it.
func (f *fakeClock) next(t *testing.T) time.Duration {
	t.Helper()
	select {
	case w := <-f.waits:
		f.mu.Lock()
		f.now = f.now.Add(w.d)
		now := f.now
		f.mu.Unlock()
		w.ch <- now
		return w.d
	case <-time.After(10 * time.Second): // hang guard only
		t.Fatal("renewer did not sleep")
		return 0
	}
}

func TestRenewerRun(t *testing.T) {
	c := newTestCA(t, 1, "a")
	store := issueStore(t, c, Identity{"w1", RoleWorker}, 0, t0)
	first := store.Leaf()
	clk := &fakeClock{now: t0, waits: make(chan fakeWait)}
	dir := t.TempDir()

	var mu sync.Mutex
	calls, failures := 0, 2
	renew := func(ctx context.Context, csr []byte) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls <= failures {
			return nil, errors.New("manager unreachable")
		}
		// The manager decides the identity from the caller's certificate;
		// a promoted node gets its new role at renewal.
		return c.Sign(csr, Identity{"w1", RoleManager}, 0, clk.Now(), rng(uint64(calls)))
	}
	r := &Renewer{Store: store, Renew: renew, Clock: clk, Rand: rng(7), Dir: dir, MinBackoff: time.Second, MaxBackoff: 3 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	validity := first.NotAfter.Sub(first.NotBefore)
	d := clk.next(t)
	at := t0.Add(d).Sub(first.NotBefore)
	if at < validity/2 || at > validity*8/10 {
		t.Fatalf("first sleep ends at %v into a %v certificate, want 50%%..80%%", at, validity)
	}
	// Two failures: backoff 1 s then 2 s.
	for _, want := range []time.Duration{time.Second, 2 * time.Second} {
		if got := clk.next(t); got != want {
			t.Fatalf("backoff %v, want %v", got, want)
		}
	}
	// Third call succeeds; the renewer then sleeps until the next renewal
	// of the NEW certificate.
	d = clk.next(t)
	renewed := store.Leaf()
	if renewed.Equal(first) {
		t.Fatal("certificate not swapped")
	}
	if id, _ := store.Identity(); id != (Identity{"w1", RoleManager}) {
		t.Fatalf("identity after renewal = %v", id)
	}
	if renewed.PublicKey.(*ecdsa.PublicKey).Equal(first.PublicKey) {
		t.Error("renewal reused the old key; want a fresh key")
	}
	nextAt := clk.Now().Sub(renewed.NotBefore)
	nv := renewed.NotAfter.Sub(renewed.NotBefore)
	if nextAt < nv/2 || nextAt > nv*8/10 || d <= 0 {
		t.Fatalf("second sleep ends at %v into a %v certificate, want 50%%..80%%", nextAt, nv)
	}
	saved, err := LoadCertStore(dir)
	if err != nil || !saved.Leaf().Equal(renewed) {
		t.Fatalf("renewed pair not saved: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, KeyFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	cancel()
	// The renewer is now blocked in a sleep or a RenewFunc; either way it
	// must return promptly with the context's error.
	go func() {
		for w := range clk.waits {
			_ = w
		}
	}()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	close(clk.waits)
}

func TestRenewOnceRejectsBadAnswers(t *testing.T) {
	c := newTestCA(t, 1, "a")
	otherCert, _, _ := c.Issue(Identity{"w1", RoleWorker}, 0, t0, rng(3))
	tests := []struct {
		name  string
		renew RenewFunc
	}{
		{"error", func(context.Context, []byte) ([]byte, error) { return nil, errors.New("boom") }},
		{"garbage", func(context.Context, []byte) ([]byte, error) { return []byte("nope"), nil }},
		{"certificate for another key", func(context.Context, []byte) ([]byte, error) { return otherCert, nil }},
		{"certificate for another node", func(_ context.Context, csr []byte) ([]byte, error) {
			return c.Sign(csr, Identity{"w2", RoleWorker}, 0, t0, rng(4))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := issueStore(t, c, Identity{"w1", RoleWorker}, 0, t0)
			before := store.Leaf()
			dir := t.TempDir()
			r := &Renewer{Store: store, Renew: tt.renew, Clock: &fakeClock{now: t0}, Rand: rng(5), Dir: dir}
			if err := r.RenewOnce(context.Background()); err == nil {
				t.Fatal("RenewOnce: want error")
			}
			if !store.Leaf().Equal(before) {
				t.Fatal("store changed after a failed renewal")
			}
			if _, err := os.Stat(filepath.Join(dir, CertFile)); !os.IsNotExist(err) {
				t.Fatalf("failed renewal wrote files: %v", err)
			}
		})
	}
}
