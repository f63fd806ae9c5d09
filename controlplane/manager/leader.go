package manager

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/planner"
	"github.com/warrenhq/warren/controlplane/raftnode"
	"github.com/warrenhq/warren/controlplane/store"
)

// runLeaderLoops runs the leader loop whenever this manager leads. Nothing
// lives only in the loop: it re-reads everything from the store each round,
// so a new leader resumes exactly where the old one stopped.
func (m *Manager) runLeaderLoops(ctx context.Context) {
	var stop func()
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	start := func() {
		lctx, cancel := context.WithCancel(ctx)
		stop = cancel
		go m.leaderLoop(lctx)
	}
	leading := m.raft.IsLeader()
	if leading {
		start()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case isLeader := <-m.raft.LeaderCh():
			if isLeader == leading {
				continue
			}
			leading = isLeader
			if stop != nil {
				stop()
				stop = nil
			}
			if leading {
				m.log.Info("became leader: running orchestrator and scheduler")
				start()
			} else {
				m.log.Info("lost leadership")
			}
		}
	}
}

// leaderLoop reconciles after every change of the store and at least once a
// second (heartbeats expire, update delays end, without any write).
//
// It first waits until its store holds everything committed before this
// term: a restarted manager's store is only the snapshot until raft has
// replayed the log, and a plan from that would judge nodes by stale
// heartbeats. The grace of every node then counts from that moment
// (LeaderSince), whatever the store says.
func (m *Manager) leaderLoop(ctx context.Context) {
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5741))
	for ctx.Err() == nil {
		bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := m.raft.Barrier(bctx)
		cancel()
		if err == nil {
			break
		}
		m.log.Warn("leader loop: barrier", zap.Error(err))
		sleepCtx(ctx, 500*time.Millisecond)
	}
	since := time.Now()
	// Acks heard while following may be old; start from what the nodes say now.
	m.acks.reset()
	for ctx.Err() == nil {
		v := m.st.View()
		m.acks.committed(v.Index(), time.Now())
		m.acks.observe(readyNodes(v), time.Now())
		batch, next := m.plan(v, time.Now(), since, rnd)
		planMetrics.plans.Inc()
		if batch != nil {
			actx, cancel := context.WithTimeout(ctx, 10*time.Second)
			idx, parts, err := applySplit(actx, batch, m.raft.Apply)
			cancel()
			if parts > 1 {
				m.log.Info("plan too large for one raft entry: applied in parts", zap.Int("parts", parts),
					zap.Int("put_tasks", len(batch.PutTasks)), zap.Int("delete_tasks", len(batch.DeleteTasks)),
					zap.Int("put_services", len(batch.PutServices)), zap.Int("put_nodes", len(batch.PutNodes)), zap.Error(err))
			}
			switch {
			case err == nil:
				// Read the state we just wrote and go again, once the
				// agents' answers to it have come in.
				m.settled(ctx, idx)
				continue
			case errors.Is(err, store.ErrConflict):
				planMetrics.conflicts.Inc()
				m.settled(ctx, m.st.Index())
				continue // someone wrote in between: re-plan on the new state
			default:
				m.log.Warn("leader loop: apply", zap.Error(err))
				sleepCtx(ctx, 500*time.Millisecond)
				continue
			}
		}
		wait := time.Second
		if !next.IsZero() {
			if d := time.Until(next); d < wait {
				wait = max(d, 10*time.Millisecond)
			}
		}
		if idx, moved := m.waitChange(ctx, time.Now().Add(wait), v.Index()); moved {
			m.settled(ctx, idx)
		}
	}
}

// applySplit applies a plan's batch through apply, in as many raft entries
// as it takes when it is too large for one (a burst of placements at
// thousands of tasks: every task written whole). Before it, a plan over
// the limit was refused every round, and the leader re-planned the same
// refused batch forever. The parts go head first (store.SplitTasks) and
// stop at the first error; parts says how many entries were applied or
// tried.
func applySplit(ctx context.Context, b *store.Batch, apply func(context.Context, *store.Batch) (uint64, error)) (idx uint64, parts int, err error) {
	idx, err = apply(ctx, b)
	if !errors.Is(err, raftnode.ErrTooLarge) {
		return idx, 1, err
	}
	head, tail, ok := store.SplitTasks(b)
	if !ok {
		return idx, 1, err
	}
	idx, parts, err = applySplit(ctx, head, apply)
	if err != nil {
		return idx, parts, err
	}
	idx, n, err := applySplit(ctx, tail, apply)
	return idx, parts + n, err
}

// waitChange blocks until the store moves past after, a node's ack moved
// (it may release a draining task), deadline comes or ctx ends. It returns
// the store's index and whether anything moved.
func (m *Manager) waitChange(ctx context.Context, deadline time.Time, after uint64) (uint64, bool) {
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	acked := make(chan struct{})
	go func() {
		select {
		case <-m.acks.woken():
			close(acked)
			cancel()
		case <-wctx.Done():
		}
	}()
	idx, err := m.st.WaitIndex(wctx, after)
	if err == nil {
		// Timed from now, not from the plan the burst waits for: the
		// propagation summary starts when the leader saw the change.
		m.acks.committed(idx, time.Now())
		return idx, true
	}
	select {
	case <-acked:
		return idx, true
	default:
		return idx, false
	}
}

// settled waits out the burst of writes the store is in (coalesce.go) and
// counts how many it folded into the next plan.
func (m *Manager) settled(ctx context.Context, index uint64) {
	_, folded := m.settleStore(ctx, index)
	planMetrics.folded.Add(float64(folded))
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// plan gathers what the planner reads besides the view — the heartbeats
// this leader holds in memory and raft's membership — and hands the view to
// planner.Plan, which decides. Task IDs come from the system's randomness
// (newID).
func (m *Manager) plan(v *store.View, now, since time.Time, rnd *rand.Rand) (*store.Batch, time.Time) {
	snap := planner.Snapshot{Cluster: v.Cluster(), Nodes: v.Nodes(), Services: v.Services(), Tasks: v.Tasks(), Volumes: v.Volumes(), Heartbeats: m.heartbeatsCopy(), LeaderSince: since, Acks: m.acks.snapshot()}
	if m.raft != nil {
		// Without the membership the flags are left as they are, rather
		// than cleared on a transient error.
		if members, err := m.raft.Members(); err == nil {
			r := &planner.Raft{Leader: m.ident.NodeID, Voters: map[string]bool{}}
			for _, mb := range members {
				r.Voters[mb.ID] = mb.Voter
			}
			snap.Raft = r
		}
	}
	res := planner.Plan(snap, now, rnd, newID)
	if res.AllocationErr != nil {
		m.log.Warn("address allocation", zap.Error(res.AllocationErr))
	}
	return res.Batch, res.NextEval
}

func (m *Manager) heartbeatsCopy() map[string]time.Time {
	m.hbMu.Lock()
	defer m.hbMu.Unlock()
	return maps.Clone(m.heartbeats)
}

func readyNodes(v *store.View) []string {
	var out []string
	for _, n := range v.Nodes() {
		if n.Status.State == api.NodeReady {
			out = append(out, n.ID)
		}
	}
	return out
}
