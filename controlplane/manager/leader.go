package manager

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/allocator"
	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/orchestrator"
	"github.com/warrenhq/warren/controlplane/scheduler"
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
func (m *Manager) leaderLoop(ctx context.Context) {
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5741))
	m.seedHeartbeats(m.st.View().Nodes(), time.Now())
	for ctx.Err() == nil {
		v := m.st.View()
		batch, next := m.plan(v, time.Now(), rnd)
		if batch != nil {
			actx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := m.raft.Apply(actx, batch)
			cancel()
			switch {
			case err == nil:
				continue // read the state we just wrote and go again
			case errors.Is(err, store.ErrConflict):
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
		wctx, cancel := context.WithTimeout(ctx, wait)
		_, _ = m.st.WaitIndex(wctx, v.Index())
		cancel()
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// plan turns one view into one raft batch: allocations, the orchestrator's
// decisions and the scheduler's placements. Every object it rewrites is
// guarded by its version, so a plan computed on stale state is refused by
// the FSM and recomputed (the Nomad plan applier's optimistic concurrency).
func (m *Manager) plan(v *store.View, now time.Time, rnd *rand.Rand) (*store.Batch, time.Time) {
	c := v.Cluster()
	if c == nil {
		return nil, time.Time{}
	}
	b := &store.Batch{Now: now}
	nodes, services, tasks := m.withHeartbeats(v.Nodes()), v.Services(), v.Tasks()

	cluster := *c
	if next, changed, err := allocator.Reconcile(cluster, nodes, services); changed {
		cluster = next
		b.Cluster = &cluster
	} else if err != nil {
		m.log.Warn("address allocation", zap.Error(err))
	}

	res := orchestrator.Reconcile(orchestrator.ClusterState{Now: now, Cluster: cluster, Nodes: nodes, Services: services, Tasks: tasks}, newID)

	// Tasks as they will be after this batch, for the scheduler.
	updated := map[string]api.Task{}
	for _, t := range res.Update {
		updated[t.ID] = t
	}
	deleted := map[string]bool{}
	for _, t := range res.Delete {
		deleted[t.ID] = true
	}
	downNodes := map[string]api.Node{}
	for _, n := range res.NodesDown {
		downNodes[n.ID] = n
	}
	var live, pending []api.Task
	for _, t := range tasks {
		if deleted[t.ID] {
			continue
		}
		if u, ok := updated[t.ID]; ok {
			t = u
		}
		if t.Status.State.Terminal() {
			continue
		}
		live = append(live, t)
		if t.Status.State == api.TaskPending && t.DesiredState == api.TaskRunning {
			pending = append(pending, t)
		}
	}
	pending = append(pending, res.Create...)
	schedNodes := make([]api.Node, 0, len(nodes))
	for _, n := range nodes {
		if d, ok := downNodes[n.ID]; ok {
			n = d
		}
		schedNodes = append(schedNodes, n)
	}
	plan := scheduler.Schedule(schedNodes, live, pending, rnd)

	placed := map[string]string{}
	for _, p := range plan.Placements {
		placed[p.TaskID] = p.NodeID
	}
	reasons := map[string]string{}
	for _, u := range plan.Unplaced {
		reasons[u.TaskID] = u.Reason
	}
	place := func(t *api.Task) bool {
		if n, ok := placed[t.ID]; ok {
			t.NodeID = n
			t.Status = api.TaskStatus{State: api.TaskAssigned, Timestamp: now, Message: "assigned to node"}
			return true
		}
		if r, ok := reasons[t.ID]; ok && t.Status.Message != r {
			t.Status.Message = r
			t.Status.Timestamp = now
			return true
		}
		return false
	}

	for _, t := range res.Create {
		place(&t)
		b.Expect = append(b.Expect, store.Expectation{Kind: store.KindTask, ID: t.ID, Version: 0})
		b.PutTasks = append(b.PutTasks, t)
	}
	seen := map[string]bool{}
	for _, t := range res.Update {
		place(&t)
		seen[t.ID] = true
		b.Expect = append(b.Expect, store.Expectation{Kind: store.KindTask, ID: t.ID, Version: t.Meta.Version})
		b.PutTasks = append(b.PutTasks, t)
	}
	for _, t := range tasks {
		if seen[t.ID] || deleted[t.ID] || t.Status.State != api.TaskPending || t.DesiredState != api.TaskRunning {
			continue
		}
		if place(&t) {
			b.Expect = append(b.Expect, store.Expectation{Kind: store.KindTask, ID: t.ID, Version: t.Meta.Version})
			b.PutTasks = append(b.PutTasks, t)
		}
	}
	for _, t := range res.Delete {
		b.Expect = append(b.Expect, store.Expectation{Kind: store.KindTask, ID: t.ID, Version: t.Meta.Version})
		b.DeleteTasks = append(b.DeleteTasks, t.ID)
	}
	for _, n := range res.NodesDown {
		b.Expect = append(b.Expect, store.Expectation{Kind: store.KindNode, ID: n.ID, Version: n.Meta.Version})
		b.PutNodes = append(b.PutNodes, n)
	}
	for _, s := range res.Services {
		b.Expect = append(b.Expect, store.Expectation{Kind: store.KindService, ID: s.ID, Version: s.Meta.Version})
		b.PutServices = append(b.PutServices, s)
	}
	m.markLeader(v, b, downNodes)
	if b.Cluster != nil {
		b.Expect = append(b.Expect, store.Expectation{Kind: store.KindCluster, Version: c.Meta.Version})
	}
	if b.Cluster == nil && len(b.PutTasks) == 0 && len(b.DeleteTasks) == 0 && len(b.PutNodes) == 0 && len(b.PutServices) == 0 {
		return nil, res.NextEval
	}
	return b, res.NextEval
}

// markLeader keeps the managers' leader flag in the store true to raft, so
// `node ls` shows which manager leads without asking raft.
func (m *Manager) markLeader(v *store.View, b *store.Batch, pending map[string]api.Node) {
	if m.raft == nil {
		return
	}
	members, err := m.raft.Members()
	if err != nil {
		return
	}
	voter := map[string]bool{}
	for _, mb := range members {
		voter[mb.ID] = mb.Voter
	}
	for _, n := range v.Nodes() {
		if p, ok := pending[n.ID]; ok {
			n = p
		}
		if n.Spec.Role != api.RoleManager || n.Status.Manager == nil {
			continue
		}
		wantLeader := n.ID == m.ident.NodeID
		isVoter, inRaft := voter[n.ID]
		if n.Status.Manager.Leader == wantLeader && (!inRaft || n.Status.Manager.Voter == isVoter) {
			continue
		}
		ms := *n.Status.Manager
		ms.Leader = wantLeader
		if inRaft {
			ms.Voter = isVoter
		}
		n.Status.Manager = &ms
		if _, ok := pending[n.ID]; ok {
			for i := range b.PutNodes {
				if b.PutNodes[i].ID == n.ID {
					b.PutNodes[i] = n
				}
			}
			continue
		}
		b.Expect = append(b.Expect, store.Expectation{Kind: store.KindNode, ID: n.ID, Version: n.Meta.Version})
		b.PutNodes = append(b.PutNodes, n)
	}
}
