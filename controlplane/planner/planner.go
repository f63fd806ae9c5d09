package planner

import (
	"math/rand/v2"
	"time"

	"github.com/warrenhq/warren/controlplane/allocator"
	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/orchestrator"
	"github.com/warrenhq/warren/controlplane/scheduler"
	"github.com/warrenhq/warren/controlplane/store"
)

// Snapshot is everything one plan reads, as of one store index. Plan never
// modifies it (nor the objects it points to).
type Snapshot struct {
	// Cluster is nil until the cluster is initialised; nothing is planned
	// before that.
	Cluster  *api.Cluster
	Nodes    []api.Node
	Services []api.Service
	Tasks    []api.Task
	// Volumes are every volume; tasks mounting one are placed where it
	// lives, and the plan records the volumes their first task created or
	// bound.
	Volumes []api.Volume
	// Heartbeats are the leader's in-memory last heartbeat per node ID. The
	// store only holds the last heartbeat that changed something, so these
	// decide liveness; they are never written back by the plan.
	Heartbeats map[string]time.Time
	// LeaderSince is when this leader started hearing heartbeats (after
	// its store caught up); see orchestrator.ClusterState.
	LeaderSince time.Time
	// Acks are the leader's in-memory service-table acknowledgements per
	// node ID: a task asked to stop is stopped once every ready node's ack
	// reaches the index of that request (orchestrator/drain.go). nil means
	// acknowledgements are not tracked and nothing waits for them.
	Acks map[string]api.TableAck
	// Raft, when not nil, is raft's view of the managers: the plan then
	// keeps each manager's leader and voter flags in the store true to it,
	// so `node ls` shows who leads without asking raft.
	Raft *Raft
}

// Raft is the membership raft reports to the leader.
type Raft struct {
	// Leader is the node ID of the manager running the plan.
	Leader string
	// Voters holds every raft member by node ID, true when it votes.
	Voters map[string]bool
}

// Result is what the leader proposes and when to plan again.
type Result struct {
	// Batch is nil when there is nothing to write.
	Batch *store.Batch
	// NextEval, when not zero, is the earliest time the plan would change
	// without any write (an update delay ends, a heartbeat expires).
	NextEval time.Time
	// AllocationErr is why the allocator could not change anything (the
	// address ranges are exhausted); the rest of the plan goes ahead.
	AllocationErr error
}

// Plan computes the leader's next batch from s at time now. rnd breaks
// scheduling ties and ids mints task IDs, so the same arguments give the
// same batch.
func Plan(s Snapshot, now time.Time, rnd *rand.Rand, ids func() string) Result {
	if s.Cluster == nil {
		return Result{}
	}
	var out Result
	b := &store.Batch{Now: now}
	nodes := withHeartbeats(s.Nodes, s.Heartbeats)

	cluster := *s.Cluster
	if next, changed, err := allocator.Reconcile(cluster, nodes, s.Services); changed {
		cluster = next
		b.Cluster = &cluster
	} else if err != nil {
		out.AllocationErr = err
	}

	res := orchestrator.Reconcile(orchestrator.ClusterState{Now: now, LeaderSince: s.LeaderSince, Cluster: cluster, Nodes: nodes, Services: s.Services, Tasks: s.Tasks, Acks: s.Acks}, ids)
	out.NextEval = res.NextEval
	a := after(s.Tasks, nodes, res)
	// Nothing waiting, nothing to place: the converged cluster's plan —
	// the one most writes wake — skips the scheduler and its copy of every
	// live task.
	var plan scheduler.Plan
	if len(a.pending) > 0 {
		plan = scheduler.ScheduleVolumes(a.nodes, a.live, a.pending, s.Volumes, rnd)
	}
	place := placer(plan, now)

	for _, t := range res.Create {
		place(&t)
		b.Expect = append(b.Expect, store.Expectation{Kind: store.KindTask, ID: t.ID, Version: 0})
		b.PutTasks = append(b.PutTasks, t)
	}
	for _, t := range res.Update {
		place(&t)
		b.Expect = append(b.Expect, store.Expectation{Kind: store.KindTask, ID: t.ID, Version: t.Meta.Version})
		b.PutTasks = append(b.PutTasks, t)
	}
	// Tasks the orchestrator left alone are written only when the
	// scheduler placed them or has a new reason they wait.
	for i := range s.Tasks {
		if id := s.Tasks[i].ID; a.updated[id] || a.deleted[id] || !waiting(&s.Tasks[i]) {
			continue
		}
		t := s.Tasks[i]
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
	for _, svc := range append(res.Services, res.Statuses...) {
		b.Expect = append(b.Expect, store.Expectation{Kind: store.KindService, ID: svc.ID, Version: svc.Meta.Version})
		b.PutServices = append(b.PutServices, svc)
	}
	addVolumes(b, plan.Volumes)
	if s.Raft != nil {
		markLeader(b, s.Nodes, a.down, *s.Raft)
	}
	if b.Cluster != nil {
		b.Expect = append(b.Expect, store.Expectation{Kind: store.KindCluster, Version: s.Cluster.Meta.Version})
	}
	if b.Cluster != nil || len(b.PutTasks) > 0 || len(b.DeleteTasks) > 0 || len(b.PutNodes) > 0 || len(b.PutServices) > 0 || len(b.PutVolumes) > 0 {
		out.Batch = b
	}
	return out
}

// withHeartbeats returns copies of nodes carrying the freshest heartbeat
// known.
func withHeartbeats(nodes []api.Node, hbs map[string]time.Time) []api.Node {
	out := make([]api.Node, len(nodes))
	for i, n := range nodes {
		if hb, ok := hbs[n.ID]; ok && hb.After(n.Status.Heartbeat) {
			n.Status.Heartbeat = hb
		}
		out[i] = n
	}
	return out
}

// waiting is a task the scheduler should place.
func waiting(t *api.Task) bool {
	return t.Status.State == api.TaskPending && t.DesiredState == api.TaskRunning
}

// afterReconcile is the cluster as it will be once the orchestrator's
// decisions are written: what the scheduler must see so it neither places
// on a node just marked down nor counts a task just deleted or stopped.
type afterReconcile struct {
	nodes   []api.Node // with the orchestrator's down marks
	live    []api.Task // non-terminal tasks; nil when none is pending
	pending []api.Task // waiting tasks, existing and new
	updated map[string]bool
	deleted map[string]bool
	down    map[string]api.Node
}

func after(tasks []api.Task, nodes []api.Node, res orchestrator.Result) afterReconcile {
	a := afterReconcile{updated: make(map[string]bool, len(res.Update)), deleted: make(map[string]bool, len(res.Delete)), down: map[string]api.Node{}}
	updates := make(map[string]api.Task, len(res.Update))
	for _, t := range res.Update {
		updates[t.ID] = t
		a.updated[t.ID] = true
	}
	for _, t := range res.Delete {
		a.deleted[t.ID] = true
	}
	for _, n := range res.NodesDown {
		a.down[n.ID] = n
	}
	// live as the scheduler must see it: what is not deleted, as updated.
	live := func(yield func(*api.Task) bool) {
		for i := range tasks {
			t := &tasks[i]
			if a.deleted[t.ID] {
				continue
			}
			if u, ok := updates[t.ID]; ok {
				t = &u
			}
			if !t.Status.State.Terminal() && !yield(t) {
				return
			}
		}
	}
	for t := range live {
		if waiting(t) {
			a.pending = append(a.pending, *t)
		}
	}
	a.pending = append(a.pending, res.Create...)
	if len(a.pending) > 0 {
		a.live = make([]api.Task, 0, len(tasks))
		for t := range live {
			a.live = append(a.live, *t)
		}
	}
	a.nodes = make([]api.Node, 0, len(nodes))
	for _, n := range nodes {
		if d, ok := a.down[n.ID]; ok {
			n = d
		}
		a.nodes = append(a.nodes, n)
	}
	return a
}

// placer returns the function that writes the scheduler's verdict into a
// task: assigned to its node, or still pending with the scheduler's reason.
// It reports whether the task changed.
func placer(plan scheduler.Plan, now time.Time) func(*api.Task) bool {
	placed := map[string]scheduler.Placement{}
	for _, p := range plan.Placements {
		placed[p.TaskID] = p
	}
	reasons := map[string]string{}
	for _, u := range plan.Unplaced {
		reasons[u.TaskID] = u.Reason
	}
	return func(t *api.Task) bool {
		if p, ok := placed[t.ID]; ok {
			t.NodeID, t.Volumes = p.NodeID, p.Volumes
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
}

// markLeader keeps the managers' leader and voter flags in the store true
// to raft. nodes are as stored; a node this batch already rewrites (marked
// down) is amended in place rather than written twice.
func markLeader(b *store.Batch, nodes []api.Node, inBatch map[string]api.Node, r Raft) {
	for _, n := range nodes {
		if p, ok := inBatch[n.ID]; ok {
			n = p
		}
		if n.Spec.Role != api.RoleManager || n.Status.Manager == nil {
			continue
		}
		wantLeader := n.ID == r.Leader
		isVoter, inRaft := r.Voters[n.ID]
		if n.Status.Manager.Leader == wantLeader && (!inRaft || n.Status.Manager.Voter == isVoter) {
			continue
		}
		ms := *n.Status.Manager
		ms.Leader = wantLeader
		if inRaft {
			ms.Voter = isVoter
		}
		n.Status.Manager = &ms
		if _, ok := inBatch[n.ID]; ok {
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
