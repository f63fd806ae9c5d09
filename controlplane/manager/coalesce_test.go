package manager

import (
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/store"
)

// TestSettle feeds settle a script of writes on an injected clock and
// checks when the plan runs and how many writes it folds: a burst is
// waited out until it pauses for quiet, a stream that never pauses is cut
// at maxDelay, and a zero quiet plans at once.
func TestSettle(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	cases := []struct {
		name            string
		quiet, maxDelay time.Duration
		writes          []time.Duration // after the write that woke the leader
		wantAt          time.Duration
		wantFolded      int
	}{
		{name: "lone write", quiet: ms(10), maxDelay: ms(100), wantAt: ms(10)},
		{name: "burst", quiet: ms(10), maxDelay: ms(100), writes: []time.Duration{ms(1), ms(2), ms(9), ms(15)}, wantAt: ms(25), wantFolded: 4},
		{name: "write after the quiet is the next burst's", quiet: ms(10), maxDelay: ms(100), writes: []time.Duration{ms(5), ms(16)}, wantAt: ms(15), wantFolded: 1},
		{name: "write exactly at the end of the quiet is too late", quiet: ms(10), maxDelay: ms(100), writes: []time.Duration{ms(10)}, wantAt: ms(10)},
		{name: "steady stream cut at the cap", quiet: ms(10), maxDelay: ms(30), writes: every(ms(5), ms(200)), wantAt: ms(30), wantFolded: 5},
		{name: "no cap", quiet: ms(10), writes: every(ms(5), ms(50)), wantAt: ms(60), wantFolded: 10},
		{name: "coalescing off", quiet: 0, maxDelay: ms(100), writes: []time.Duration{ms(1)}, wantAt: 0},
		{name: "negative quiet is off", quiet: -1, maxDelay: ms(100), writes: []time.Duration{ms(1)}, wantAt: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC)
			clock := start
			now := func() time.Time { return clock }
			next := 0
			var index uint64 = 7
			wait := func(deadline time.Time, after uint64) (uint64, bool) {
				if after != index {
					t.Fatalf("wait after %d, want the latest index %d", after, index)
				}
				if next < len(tc.writes) {
					if at := start.Add(tc.writes[next]); at.Before(deadline) {
						clock = at
						next++
						index++
						return index, true
					}
				}
				clock = deadline
				return index, false
			}
			gotIndex, folded := settle(newBurst(tc.quiet, tc.maxDelay, start), 7, now, wait)
			if got := clock.Sub(start); got != tc.wantAt {
				t.Errorf("planned at +%s, want +%s", got, tc.wantAt)
			}
			if folded != tc.wantFolded {
				t.Errorf("folded %d writes, want %d", folded, tc.wantFolded)
			}
			if gotIndex != 7+uint64(tc.wantFolded) {
				t.Errorf("ended on index %d, want %d", gotIndex, 7+uint64(tc.wantFolded))
			}
		})
	}
}

// every lists times step apart from step up to and including end.
func every(step, end time.Duration) []time.Duration {
	var out []time.Duration
	for d := step; d <= end; d += step {
		out = append(out, d)
	}
	return out
}

// TestWaitChange: the leader's wait ends on a store write (with its index),
// on a node's moved ack (which may release a drain), and otherwise at its
// deadline with nothing moved.
func TestWaitChange(t *testing.T) {
	st := store.New()
	m := &Manager{st: st}
	far := time.Now().Add(30 * time.Second) // a wait that ends here missed what it waited for

	applyBatch(t, st, &store.Batch{Now: time.Now()})
	if idx, moved := m.waitChange(t.Context(), far, 0); !moved || idx != st.Index() {
		t.Fatalf("after a write: index %d moved %v, want %d and moved", idx, moved, st.Index())
	}
	m.acks.record("n1", 5, time.Now())
	if idx, moved := m.waitChange(t.Context(), far, st.Index()); !moved || idx != st.Index() {
		t.Fatalf("after an ack: index %d moved %v, want moved at %d", idx, moved, st.Index())
	}
	if _, moved := m.waitChange(t.Context(), time.Now().Add(20*time.Millisecond), st.Index()); moved {
		t.Fatal("nothing happened, yet the wait says something moved")
	}
}
