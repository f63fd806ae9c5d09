package orchestrator

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/scheduler"
)

// Reconcile compares what the services ask for with the tasks and nodes in
// the snapshot and returns what to write. ids mints task IDs for new tasks.
//
// Order of work: nodes whose heartbeat expired are marked down and their
// tasks orphaned first, so that every service then reconciles against the
// nodes as they will be after this batch; then each service; then tasks of
// deleted services; then the per-slot history is trimmed.
func Reconcile(cs ClusterState, ids func() string) Result {
	r := &reconciler{
		now:     cs.Now,
		ids:     ids,
		nodes:   map[string]*api.Node{},
		dirty:   map[string]bool{},
		deleted: map[string]bool{},
		started: map[string]bool{},
	}
	r.markNodesDown(cs)
	// Working copies in one allocation: a plan reads every task, and one
	// heap object per task was a fifth of its cost.
	work := slices.Clone(cs.Tasks)
	r.tasks = make([]*api.Task, len(work))
	for i := range work {
		r.tasks[i] = &work[i]
	}
	sort.Slice(r.tasks, func(i, j int) bool { return r.tasks[i].ID < r.tasks[j].ID })
	r.orphan()
	r.markUnknown()

	byService := make(map[string][]*api.Task, len(cs.Services))
	for _, t := range r.tasks {
		byService[t.ServiceID] = append(byService[t.ServiceID], t)
	}
	svcs := append([]api.Service(nil), cs.Services...)
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].ID < svcs[j].ID })
	known := map[string]bool{}
	for _, svc := range svcs {
		known[svc.ID] = true
		r.service(svc, byService[svc.ID])
	}
	for _, t := range r.tasks {
		if known[t.ServiceID] {
			continue
		}
		// The service is gone: stop what runs, forget what stopped.
		r.setDesired(t, api.TaskRemove)
		if t.Status.State.Terminal() || neverPlaced(t) {
			r.deleted[t.ID] = true
		}
	}
	r.drains(cs.Acks, cs.DrainTimeout)
	for _, t := range r.tasks {
		switch {
		case r.deleted[t.ID]:
			r.res.Delete = append(r.res.Delete, *t)
		case neverPlaced(t) && !t.DesiredState.Before(api.TaskComplete):
			r.res.Delete = append(r.res.Delete, *t)
		case r.dirty[t.ID]:
			r.res.Update = append(r.res.Update, *t)
		}
	}
	return r.res
}

type reconciler struct {
	now     time.Time
	ids     func() string
	nodes   map[string]*api.Node // as they will be after this batch
	order   []*api.Node          // the same, by ID
	tasks   []*api.Task          // working copies, by ID
	dirty   map[string]bool
	deleted map[string]bool
	// failed are the tasks of the service being reconciled that failed its
	// rollout (see failureAction).
	failed map[string]bool
	// verdict is the canary analysis of the service being reconciled, nil
	// when it has none (analysis.go).
	verdict *Verdict
	started map[string]bool // drains begun in this pass (drain.go)
	// nodeDownGrace is the cluster's, the default disconnect grace.
	nodeDownGrace time.Duration
	res           Result
}

func (r *reconciler) wake(at time.Time) {
	if r.res.NextEval.IsZero() || at.Before(r.res.NextEval) {
		r.res.NextEval = at
	}
}

// setDesired only ever moves the desired state forward (running → shutdown →
// remove), like the task state itself.
func (r *reconciler) setDesired(t *api.Task, s api.TaskState) {
	if t.DesiredState.Before(s) {
		r.startDrain(t, s)
		t.DesiredState = s
		r.dirty[t.ID] = true
	}
}

// markNodesDown marks nodes whose last heartbeat (or creation, for a node that
// never sent one) is older than the grace. A node with neither time is left
// alone: there is nothing to judge it by. Nor is a node judged before the
// leader has listened for a whole grace (cs.LeaderSince): a restart of the
// daemon shorter than the grace then never replaces a node's tasks, whatever
// the store says about the node's last heartbeat.
func (r *reconciler) markNodesDown(cs ClusterState) {
	grace := cs.Cluster.NodeDownGrace.D()
	if grace <= 0 {
		grace = DefaultNodeDownGrace
	}
	r.nodeDownGrace = grace
	for i := range cs.Nodes {
		n := cs.Nodes[i]
		ref := n.Status.Heartbeat
		if ref.IsZero() {
			ref = n.Meta.CreatedAt
		}
		if n.Status.State != api.NodeDown && !ref.IsZero() {
			deadline := ref.Add(grace)
			if floor := cs.LeaderSince.Add(grace); !cs.LeaderSince.IsZero() && floor.After(deadline) {
				deadline = floor
			}
			if r.now.After(deadline) {
				n.Status.State = api.NodeDown
				n.Status.Message = fmt.Sprintf("no heartbeat for %s (grace %s)", r.now.Sub(ref).Round(time.Second), grace)
				r.res.NodesDown = append(r.res.NodesDown, n)
			} else {
				r.wake(deadline)
			}
		}
		r.nodes[n.ID] = &n
		r.order = append(r.order, &n)
	}
	sort.Slice(r.order, func(i, j int) bool { return r.order[i].ID < r.order[j].ID })
	sort.Slice(r.res.NodesDown, func(i, j int) bool { return r.res.NodesDown[i].ID < r.res.NodesDown[j].ID })
}

// orphan marks every unfinished task on a removed node: it will never
// report again. Tasks on a node that is only down keep their desired state
// — the node may be cut off and still running them — and the service's
// disconnect policy decides (disconnect.go). Marking those orphaned, which
// is terminal, is what once had a returning node stop its healthy tasks:
// the store refuses the node's "running" after a terminal state, and the
// desired shutdown reached the node first.
func (r *reconciler) orphan() {
	for _, t := range r.tasks {
		if t.NodeID == "" || t.Status.State.Terminal() || r.nodes[t.NodeID] != nil {
			continue
		}
		t.Status.State = api.TaskOrphaned
		t.Status.Timestamp = r.now
		t.Status.Message = "node " + t.NodeID + " was removed"
		if t.DesiredState.Before(api.TaskShutdown) {
			t.DesiredState = api.TaskShutdown
		}
		r.dirty[t.ID] = true
	}
}

// slotKey identifies a replica: the slot number of a replicated service, the
// node of a global one.
type slotKey struct {
	n    uint64
	node string
}

func (k slotKey) less(o slotKey) bool {
	if k.n != o.n {
		return k.n < o.n
	}
	return k.node < o.node
}

type slot struct {
	key    slotKey
	tasks  []*api.Task // newest first, history included
	wanted bool        // the service wants a task here
	create bool        // a new task may be started here (a paused node keeps, but gets nothing new)
	// away: a global service's slot on a down node, neither wanted (it
	// holds up nothing) nor removed (its task may run on).
	away bool
	// lost are tasks on a down node past their disconnect grace
	// (disconnect.go): they neither fill the slot nor hold up its refill,
	// and are left alone until their node returns.
	lost map[*api.Task]bool
}

// live lists the tasks that fill the slot.
func (s *slot) live() []*api.Task {
	var out []*api.Task
	for _, t := range s.tasks {
		if live(t) && !s.lost[t] {
			out = append(out, t)
		}
	}
	return out
}

// unfinished counts tasks whose process may still exist, whatever is desired
// of them; this is what occupies a node and what the update budget bounds.
// A lost task is out of reach and counts for neither.
func (s *slot) unfinished() int {
	n := 0
	for _, t := range s.tasks {
		if !t.Status.State.Terminal() && !s.lost[t] {
			n++
		}
	}
	return n
}

func hasLive(s *slot) bool {
	if s == nil {
		return false
	}
	for _, t := range s.tasks {
		if live(t) {
			return true
		}
	}
	return false
}

// slots groups a service's tasks and adds the slots it wants but has no
// task in. For a global service a node is wanted when it is not down, not
// drained and matches the constraints; tasks are only started on ready,
// active nodes.
func (r *reconciler) slots(svc *api.Service, tasks []*api.Task) []*slot {
	m := map[slotKey]*slot{}
	get := func(k slotKey) *slot {
		s := m[k]
		if s == nil {
			s = &slot{key: k}
			m[k] = s
		}
		return s
	}
	global := svc.Spec.Mode == api.ModeGlobal
	for _, t := range tasks {
		k := slotKey{n: t.Slot}
		if global {
			k = slotKey{node: t.NodeID}
		}
		s := get(k)
		s.tasks = append(s.tasks, t)
	}
	if global {
		cons, err := scheduler.ParseConstraints(svc.Spec.Task.Placement.Constraints)
		for _, n := range r.order {
			if err != nil || n.Spec.Availability == api.AvailabilityDrain {
				continue
			}
			if !cons.Matches(n) || !scheduler.ImageRuns(svc.Spec.Task.Container.ImagePlatforms, n) {
				continue
			}
			// A down node keeps the task it runs (it may be only cut off),
			// but the service does not wait for it: its slot counts once
			// the node is back, and then converges to the current spec.
			if n.Status.State == api.NodeDown {
				if sl := m[slotKey{node: n.ID}]; hasLive(sl) {
					sl.away = true
				}
				continue
			}
			s := get(slotKey{node: n.ID})
			s.wanted = true
			s.create = n.Status.State == api.NodeReady && scheduler.Active(n)
		}
	} else {
		for i := uint64(1); i <= svc.Spec.Replicas; i++ {
			s := get(slotKey{n: i})
			s.wanted, s.create = true, true
		}
	}
	out := make([]*slot, 0, len(m))
	for _, s := range m {
		sortNewest(s.tasks)
		for _, t := range s.tasks {
			if r.lost(svc, t) {
				if s.lost == nil {
					s.lost = map[*api.Task]bool{}
				}
				s.lost[t] = true
			}
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key.less(out[j].key) })
	return out
}

func (r *reconciler) newTask(svc *api.Service, k slotKey, from *api.Task) api.Task {
	t := api.Task{
		ID:           r.ids(),
		ServiceID:    svc.ID,
		ServiceName:  svc.Spec.Name,
		Slot:         k.n,
		NodeID:       k.node,
		Spec:         svc.Spec.Task,
		SpecVersion:  svc.SpecVersion,
		Version:      versionLabel(svc),
		DesiredState: api.TaskRunning,
		Status:       api.TaskStatus{State: api.TaskPending, Timestamp: r.now, Message: "created by the orchestrator"},
	}
	if from != nil {
		// While a rollout waits (paused, or a canary awaiting promotion) a
		// lost old replica is replaced by the same old template.
		t.Spec, t.SpecVersion, t.Version = from.Spec, from.SpecVersion, from.Version
	}
	r.res.Create = append(r.res.Create, t)
	return t
}
