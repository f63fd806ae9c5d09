package orchestrator

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/scheduler"
)

// sim is a tiny cluster for tests: it applies Results the way the FSM would,
// places pending tasks with the real scheduler, and plays a node agent that
// moves tasks forward. Nothing here is what Reconcile computes; it only
// models the world around it.
type sim struct {
	t        testing.TB
	now      time.Time
	cluster  api.Cluster
	nodes    []api.Node
	services []api.Service
	tasks    []api.Task
	seq      int
	version  uint64
	rnd      *rand.Rand
	// cut nodes stop heartbeating and their agents do nothing.
	cut map[string]bool
	// hold, when set, decides whether the agent leaves a task where it is
	// this step (a slow image pull, a slow start).
	hold func(*api.Task) bool
	// fail, when set, decides whether a starting task fails instead.
	fail func(*api.Task) bool
	// health, when set, is what a running task's check reports; unset,
	// a task with a check is healthy as soon as it runs.
	health func(*api.Task) api.HealthState
	// acks, when not nil, are the service-table acks the leader heard
	// (drain.go); the agent then keeps draining tasks running.
	acks map[string]api.TableAck
	last Result
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newSim(t testing.TB, nodes int) *sim {
	s := &sim{t: t, now: t0, rnd: rand.New(rand.NewPCG(1, 2)), cut: map[string]bool{}}
	s.cluster = api.Cluster{NodeDownGrace: api.Duration(10 * time.Second)}
	for i := 1; i <= nodes; i++ {
		s.addNode(fmt.Sprintf("n%d", i))
	}
	return s
}

func (s *sim) addNode(id string) {
	s.nodes = append(s.nodes, api.Node{
		ID:   id,
		Spec: api.NodeSpec{Role: api.RoleWorker, Availability: api.AvailabilityActive},
		Status: api.NodeStatus{State: api.NodeReady, Hostname: id, Heartbeat: s.now,
			Capacity: api.Resources{NanoCPUs: 8e9, MemoryBytes: 8 << 30}},
		Meta: api.Meta{CreatedAt: s.now},
	})
}

func (s *sim) node(id string) *api.Node {
	for i := range s.nodes {
		if s.nodes[i].ID == id {
			return &s.nodes[i]
		}
	}
	s.t.Fatalf("no node %s", id)
	return nil
}

func (s *sim) service(id string) *api.Service {
	for i := range s.services {
		if s.services[i].ID == id {
			return &s.services[i]
		}
	}
	s.t.Fatalf("no service %s", id)
	return nil
}

func (s *sim) ids() string { s.seq++; return fmt.Sprintf("t%04d", s.seq) }

func (s *sim) state() ClusterState {
	return ClusterState{Now: s.now, Cluster: s.cluster, Nodes: clone(s.nodes), Services: clone(s.services), Tasks: clone(s.tasks), Acks: s.acks}
}

func clone[T any](x []T) []T { return append([]T(nil), x...) }

// reconcile runs Reconcile and applies the result like the FSM would.
func (s *sim) reconcile() Result {
	r := Reconcile(s.state(), s.ids)
	s.apply(r)
	s.last = r
	return r
}

func (s *sim) apply(r Result) {
	s.version++
	byID := map[string]int{}
	for i, t := range s.tasks {
		byID[t.ID] = i
	}
	for _, u := range r.Update {
		i, ok := byID[u.ID]
		if !ok {
			s.t.Fatalf("update of unknown task %s", u.ID)
		}
		u.Meta.Version = s.version
		s.tasks[i] = u
	}
	drop := map[string]bool{}
	for _, d := range r.Delete {
		if _, ok := byID[d.ID]; !ok {
			s.t.Fatalf("delete of unknown task %s", d.ID)
		}
		drop[d.ID] = true
	}
	kept := s.tasks[:0]
	for _, t := range s.tasks {
		if !drop[t.ID] {
			kept = append(kept, t)
		}
	}
	s.tasks = kept
	for _, c := range r.Create {
		if _, ok := byID[c.ID]; ok {
			s.t.Fatalf("create of existing task %s", c.ID)
		}
		c.Meta = api.Meta{Version: s.version, CreatedAt: s.now, UpdatedAt: s.now}
		s.tasks = append(s.tasks, c)
	}
	for _, n := range r.NodesDown {
		*s.node(n.ID) = n
	}
	for _, svc := range append(r.Services, r.Statuses...) {
		svc.Meta.Version = s.version
		*s.service(svc.ID) = svc
	}
}

// schedule places pending tasks with the real scheduler.
func (s *sim) schedule() {
	var pending, active []api.Task
	for _, t := range s.tasks {
		if t.Status.State.Terminal() {
			continue
		}
		active = append(active, t)
		if t.Status.State == api.TaskPending && t.DesiredState == api.TaskRunning {
			pending = append(pending, t)
		}
	}
	plan := scheduler.Schedule(s.nodes, active, pending, s.rnd)
	where := map[string]string{}
	for _, p := range plan.Placements {
		where[p.TaskID] = p.NodeID
	}
	for i := range s.tasks {
		if n, ok := where[s.tasks[i].ID]; ok {
			s.tasks[i].NodeID = n
			s.tasks[i].Status = api.TaskStatus{State: api.TaskAssigned, Timestamp: s.now}
		}
	}
}

// agent plays every reachable node's agent for one step.
func (s *sim) agent() {
	for i := range s.nodes {
		n := &s.nodes[i]
		if !s.cut[n.ID] && n.Status.State == api.NodeReady {
			n.Status.Heartbeat = s.now
		}
	}
	for i := range s.tasks {
		t := &s.tasks[i]
		if t.NodeID == "" || s.cut[t.NodeID] || t.Status.State.Terminal() {
			continue
		}
		if s.hold != nil && s.hold(t) {
			continue
		}
		switch {
		case t.Status.State == api.TaskUnknown && s.node(t.NodeID).Status.State == api.NodeReady:
			// Back from a cut, the node says its task still runs; the
			// store marks it rejoined.
			t.Status.State, t.Status.Timestamp = api.TaskRunning, s.now
			t.Rejoined = true
		case t.Draining():
			// endpoints.ForNode hands it to the node as still running.
		case t.DesiredState != api.TaskRunning:
			t.Status = api.TaskStatus{State: api.TaskShutdown, Timestamp: s.now, Addr: t.Status.Addr}
		case t.Status.State == api.TaskAssigned:
			if s.fail != nil && s.fail(t) {
				t.Status = api.TaskStatus{State: api.TaskFailed, Timestamp: s.now, Err: "exit 1"}
				continue
			}
			t.Status = api.TaskStatus{State: api.TaskRunning, Timestamp: s.now, Addr: "10.42.0.1", PID: 100}
		case t.Status.State == api.TaskRunning && t.Spec.Health != nil:
			h := api.HealthHealthy
			if s.health != nil {
				h = s.health(t)
			}
			// Like the agent, stamp a status only when it changes.
			if h != t.Status.Health {
				t.Status.Health, t.Status.Timestamp = h, s.now
			}
		}
	}
}

// step is one round of the cluster: reconcile, schedule, agents, one second.
func (s *sim) step() {
	s.reconcile()
	s.schedule()
	s.agent()
	s.now = s.now.Add(time.Second)
}

func (s *sim) run(n int) {
	for i := 0; i < n; i++ {
		s.step()
	}
}

// live returns the service's live tasks by slot (or node, for global).
func (s *sim) liveTasks(svcID string) []api.Task {
	var out []api.Task
	for _, t := range s.tasks {
		if t.ServiceID == svcID && live(&t) {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Slot != out[j].Slot {
			return out[i].Slot < out[j].Slot
		}
		return out[i].NodeID < out[j].NodeID
	})
	return out
}

func (s *sim) running(svcID string) []api.Task {
	var out []api.Task
	for _, t := range s.liveTasks(svcID) {
		if t.Status.State == api.TaskRunning {
			out = append(out, t)
		}
	}
	return out
}

// unfinished counts the service's tasks whose process may exist.
func (s *sim) unfinished(svcID string) int {
	n := 0
	for _, t := range s.tasks {
		if t.ServiceID == svcID && !t.Status.State.Terminal() {
			n++
		}
	}
	return n
}

// updateSpec changes the task template the way the API does: the old spec
// is kept for rollback, the version moves, the rollout status is reset.
func (s *sim) updateSpec(svcID string, mut func(*api.ServiceSpec)) {
	svc := s.service(svcID)
	prev := svc.Spec
	svc.PreviousSpec = &prev
	svc.Spec.Task.Container.Env = append(clone(svc.Spec.Task.Container.Env), fmt.Sprintf("REV=%d", svc.SpecVersion+1))
	if mut != nil {
		mut(&svc.Spec)
	}
	svc.SpecVersion++
	svc.Update = nil
}

func replicated(id string, n uint64) api.Service {
	return api.Service{
		ID:          id,
		SpecVersion: 1,
		Spec: api.ServiceSpec{
			Name: id, Mode: api.ModeReplicated, Replicas: n,
			Task: api.TaskSpec{Container: api.ContainerSpec{Image: "demo:1"}, Restart: api.RestartPolicy{Condition: api.RestartAny}},
		},
	}
}

func global(id string) api.Service {
	s := replicated(id, 0)
	s.Spec.Mode = api.ModeGlobal
	return s
}
