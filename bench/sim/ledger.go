//go:build linux

package sim

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// Ledger times tasks through the pipeline from the nodes' side: when each
// task's node began starting it (it was scheduled, committed and delivered
// in the node's assignments) and when a manager acknowledged the node's report that it
// runs (the report's raft entry committed). Polling the leader's /metrics
// for the same count walks every task there and, on a busy two-core
// machine, answers about once a second, which both loads the leader and
// blurs the figure by as much; the ledger costs the managers nothing and
// resolves to the millisecond.
type Ledger struct {
	mu        sync.Mutex
	counts    func(*api.Task) bool
	start     time.Time
	delivered map[string]time.Duration
	sent      map[string]time.Duration // its running report first went out
	acked     map[string]time.Duration
	changed   chan struct{}
}

// Arm starts a count: from now, tasks for which counts is true are timed.
func (l *Ledger) Arm(counts func(*api.Task) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts, l.start = counts, time.Now()
	l.delivered, l.sent, l.acked = map[string]time.Duration{}, map[string]time.Duration{}, map[string]time.Duration{}
	l.changed = make(chan struct{}, 1)
}

// started records a task its node's worker is starting: the node has it
// in its assignments.
func (l *Ledger) started(t *api.Task) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil || t.DesiredState != api.TaskRunning || !l.counts(t) {
		return
	}
	if _, ok := l.delivered[t.ID]; !ok {
		l.delivered[t.ID] = time.Since(l.start)
	}
}

// sending records the tasks of a report going out as running.
func (l *Ledger) sending(tasks map[string]api.TaskStatus) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil {
		return
	}
	for id, st := range tasks {
		if _, ok := l.delivered[id]; ok && st.State == api.TaskRunning {
			if _, ok := l.sent[id]; !ok {
				l.sent[id] = time.Since(l.start)
			}
		}
	}
}

// reported records the tasks of a report a manager acknowledged as
// running. Only tasks started since Arm count (their service is known).
func (l *Ledger) reported(tasks map[string]api.TaskStatus) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil {
		return
	}
	moved := false
	for id, st := range tasks {
		if st.State != api.TaskRunning {
			continue
		}
		if _, ok := l.delivered[id]; !ok {
			continue
		}
		if _, ok := l.acked[id]; !ok {
			l.acked[id] = time.Since(l.start)
			moved = true
		}
	}
	if moved {
		select {
		case l.changed <- struct{}{}:
		default:
		}
	}
}

// LedgerFigures are the times, from Arm, at which the last of the first n
// counted tasks was delivered and acknowledged running.
type LedgerFigures struct {
	Delivered, Acked time.Duration
	// Queued is each acknowledged task's time from its node starting it
	// to its running report going out (the node's queue: one report in
	// flight at a time), Sent from then to a manager acknowledging it.
	Queued, Sent []time.Duration
}

// Wait returns once n counted tasks are acknowledged running (or ctx
// ends, with an error naming how far it got), and disarms.
func (l *Ledger) Wait(ctx context.Context, n int) (LedgerFigures, error) {
	for {
		l.mu.Lock()
		got, changed := len(l.acked), l.changed
		l.mu.Unlock()
		if got >= n {
			break
		}
		select {
		case <-ctx.Done():
			l.mu.Lock()
			d := len(l.delivered)
			l.counts = nil
			l.mu.Unlock()
			return LedgerFigures{}, fmt.Errorf("waiting for %d tasks acknowledged running: %d delivered to their nodes, %d acknowledged: %w", n, d, got, ctx.Err())
		case <-changed:
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts = nil
	f := LedgerFigures{Delivered: nth(l.delivered, n), Acked: nth(l.acked, n)}
	for id, a := range l.acked {
		f.Queued = append(f.Queued, l.sent[id]-l.delivered[id])
		f.Sent = append(f.Sent, a-l.sent[id])
	}
	return f, nil
}

// nth is the n-th smallest of the times in m (the largest, when m holds
// fewer): when the first n tasks had got there.
func nth(m map[string]time.Duration, n int) time.Duration {
	xs := slices.Sorted(maps.Values(m))
	if len(xs) == 0 || n <= 0 {
		return 0
	}
	return xs[min(n, len(xs))-1]
}
