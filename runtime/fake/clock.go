package fake

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/warrenhq/warren/runtime"
)

// Clock is a runtime.Clock whose time moves only when a test calls Advance.
// A test that wants a timer to fire first waits with BlockUntil until the
// code under test has armed it: from then on, nothing the timer guards can
// happen before Advance, so "not yet" is an exact assertion, not a sleep.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*timer
	changed chan struct{} // closed and replaced whenever timers changes
}

// NewClock returns a fake clock reading now.
func NewClock(now time.Time) *Clock {
	return &Clock{now: now, changed: make(chan struct{})}
}

type timer struct {
	c    *Clock
	at   time.Time
	d    time.Duration
	ch   chan time.Time
	done bool
}

// Now implements runtime.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer implements runtime.Clock. A timer of d <= 0 fires at once.
func (c *Clock) NewTimer(d time.Duration) runtime.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{c: c, at: c.now.Add(d), d: d, ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.done = true
		t.ch <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	c.notify()
	return t
}

func (t *timer) C() <-chan time.Time { return t.ch }

func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.done {
		return false
	}
	t.done = true
	t.c.remove(t)
	return true
}

// remove drops t from the armed timers; c.mu is held.
func (c *Clock) remove(t *timer) {
	for i, x := range c.timers {
		if x == t {
			c.timers = append(c.timers[:i], c.timers[i+1:]...)
			c.notify()
			return
		}
	}
}

func (c *Clock) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Advance moves the time forward by d and fires, in order, every timer due
// by then. It returns once they have fired (their channels hold the time).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	keep := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			keep = append(keep, t)
			continue
		}
		t.done = true
		t.ch <- t.at
	}
	for i := len(keep); i < len(c.timers); i++ {
		c.timers[i] = nil
	}
	c.timers = keep
	c.notify()
}

// Armed returns the durations the armed timers were created with, sorted.
func (c *Clock) Armed() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.armed()
}

func (c *Clock) armed() []time.Duration {
	out := make([]time.Duration, 0, len(c.timers))
	for _, t := range c.timers {
		out = append(out, t.d)
	}
	slices.Sort(out)
	return out
}

// BlockUntil waits until the armed timers are exactly ds (by the duration
// each was created with, in any order): that is, until the code under test
// is parked on those timers and on nothing else. Naming the durations, not
// only their number, keeps a timer armed on the way (a probe's timeout,
// say) from passing for the one the test waits for. It gives up after 10s
// of real time, which only guards against a hung test.
func (c *Clock) BlockUntil(ds ...time.Duration) error {
	want := slices.Clone(ds)
	slices.Sort(want)
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		got, changed := c.armed(), c.changed
		c.mu.Unlock()
		if slices.Equal(got, want) {
			return nil
		}
		select {
		case <-changed:
		case <-deadline.C:
			return fmt.Errorf("fake clock: armed timers are %v, want %v", got, want)
		}
	}
}
