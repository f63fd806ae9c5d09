package manager

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Plan coalescing. Writes come in bursts: a plan wakes every agent, whose
// status reports then land one raft entry after another, and a CLI batch
// creates services back to back. A plan reads the whole cluster, so
// planning once per entry of a burst made the leader spend most of its CPU
// re-planning states a few milliseconds apart (57 % of the leader's CPU in
// the 100-node simulator). The leader instead waits until the store has
// been quiet for a moment, bounded so that a steady stream of writes still
// gets a plan every maxDelay.
const (
	// DefaultPlanQuiet is how long the store must be still before the
	// leader plans. Agents answer a plan within a few milliseconds of
	// each other; a longer quiet only adds latency to every decision.
	DefaultPlanQuiet = 10 * time.Millisecond
	// DefaultPlanMaxDelay bounds the wait under a steady stream of writes.
	DefaultPlanMaxDelay = 100 * time.Millisecond
)

// burst is the pure part of the wait: when the plan is due, given when the
// burst began and when its last write came.
type burst struct {
	quiet, maxDelay time.Duration
	first, last     time.Time
}

func newBurst(quiet, maxDelay time.Duration, now time.Time) burst {
	return burst{quiet: quiet, maxDelay: maxDelay, first: now, last: now}
}

// wrote records a write of the burst at now.
func (b *burst) wrote(now time.Time) { b.last = now }

// due is when the leader should plan: quiet after the last write, and no
// later than maxDelay after the first. A zero quiet plans at once.
func (b *burst) due() time.Time {
	if b.quiet <= 0 {
		return b.first
	}
	at := b.last.Add(b.quiet)
	if b.maxDelay > 0 {
		if limit := b.first.Add(b.maxDelay); limit.Before(at) {
			at = limit
		}
	}
	return at
}

// waitFunc blocks until the store's index is past after or deadline
// comes, and returns the index it saw and whether it moved.
type waitFunc func(deadline time.Time, after uint64) (uint64, bool)

// settle waits out the burst that moved the store past index at now, and
// returns the index it ends on and how many writes it folded into the one
// plan that follows. now and wait are the clock and the store, injected so
// the coalescing is tested without sleeping.
func settle(b burst, index uint64, now func() time.Time, wait waitFunc) (uint64, int) {
	writes := 0
	for {
		due := b.due()
		if !now().Before(due) {
			return index, writes
		}
		idx, moved := wait(due, index)
		if !moved {
			return index, writes
		}
		index = idx
		writes++
		b.wrote(now())
	}
}

// settleStore is settle on the manager's store and clock, ending early
// when ctx does.
func (m *Manager) settleStore(ctx context.Context, index uint64) (uint64, int) {
	quiet, maxDelay := m.cfg.PlanQuiet, m.cfg.PlanMaxDelay
	if quiet == 0 {
		quiet = DefaultPlanQuiet
	}
	if maxDelay == 0 {
		maxDelay = DefaultPlanMaxDelay
	}
	wait := func(deadline time.Time, after uint64) (uint64, bool) {
		return m.waitChange(ctx, deadline, after)
	}
	return settle(newBurst(quiet, maxDelay, time.Now()), index, time.Now, wait)
}

// planCounters say how well writes are coalesced: writes folded per plan
// is folded / plans. Process-wide, like the API's metrics: one manager per
// process.
type planCounters struct {
	plans, folded, conflicts prometheus.Counter
}

var planMetrics = planCounters{
	plans: prometheus.NewCounter(prometheus.CounterOpts{Name: "warren_leader_plans_total",
		Help: "Plans the leader computed (each reads the whole cluster)."}),
	folded: prometheus.NewCounter(prometheus.CounterOpts{Name: "warren_leader_plan_coalesced_writes_total",
		Help: "Store writes and node acks that came while the leader waited for a burst to end, folded into the plan after it."}),
	conflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: "warren_leader_plan_conflicts_total",
		Help: "Plans the store refused because something they read changed before they were applied; the leader plans again."}),
}

func (p planCounters) describe(ch chan<- *prometheus.Desc) {
	p.plans.Describe(ch)
	p.folded.Describe(ch)
	p.conflicts.Describe(ch)
}

func (p planCounters) collect(ch chan<- prometheus.Metric) {
	p.plans.Collect(ch)
	p.folded.Collect(ch)
	p.conflicts.Collect(ch)
}
