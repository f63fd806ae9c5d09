package orchestrator

import (
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// drainSim is a settled cluster of n nodes whose leader tracks acks, with
// every node's table at the current version.
func drainSim(t *testing.T, nodes int, svcs ...api.Service) *sim {
	s := newSim(t, nodes)
	s.acks = map[string]api.TableAck{}
	s.services = svcs
	s.run(4)
	s.ackAll()
	return s
}

// ackAll has every node that is not cut off apply the current version.
func (s *sim) ackAll() {
	for _, n := range s.nodes {
		if !s.cut[n.ID] {
			s.acks[n.ID] = api.TableAck{Index: s.version, At: s.now}
		}
	}
}

func (s *sim) task(id string) api.Task {
	for _, t := range s.tasks {
		if t.ID == id {
			return t
		}
	}
	s.t.Fatalf("no task %s", id)
	return api.Task{}
}

// draining lists the service's tasks held for their drain, by ID.
func (s *sim) draining(svcID string) []string {
	var out []string
	for _, t := range s.tasks {
		if t.ServiceID == svcID && t.Draining() {
			out = append(out, t.ID)
		}
	}
	return out
}

// released says whether the task was handed to its node as stopped.
func released(t api.Task) bool { return t.Drain != nil && !t.Drain.Done.IsZero() }

func TestDrainAckArrives(t *testing.T) {
	s := drainSim(t, 2, replicated("web", 2))
	s.service("web").Spec.Replicas = 1
	s.service("web").SpecVersion++

	r := s.reconcile()
	if len(r.Update) != 1 || r.Update[0].DesiredState != api.TaskRemove {
		t.Fatalf("scale down updated %+v", r.Update)
	}
	gone := r.Update[0]
	if gone.Drain == nil || !gone.Drain.Since.Equal(s.now) || gone.Drain.Index != 0 || !gone.Drain.Done.IsZero() {
		t.Fatalf("the stop did not start a drain: %+v", gone.Drain)
	}
	stopIndex := s.version // the write that stopped it
	s.agent()
	if st := s.task(gone.ID).Status.State; st != api.TaskRunning {
		t.Fatalf("a draining task must keep running on its node, is %s", st)
	}

	// The next pass records the index the nodes must reach and waits.
	s.now = s.now.Add(10 * time.Millisecond)
	r = s.reconcile()
	d := s.task(gone.ID).Drain
	if d.Index != stopIndex || !d.Done.IsZero() {
		t.Fatalf("drain after one pass without acks: %+v (stop written at %d)", d, stopIndex)
	}
	if want := d.Since.Add(DefaultDrainTimeout); !r.NextEval.Equal(want) {
		t.Errorf("NextEval %v, want the drain timeout %v", r.NextEval, want)
	}
	// Recording the index is the only write; nothing to do until an ack.
	if again := s.reconcile(); !again.Empty() {
		t.Fatalf("a waiting drain wrote %+v", again)
	}

	// One node acks: still waiting for the other.
	s.acks["n1"] = api.TableAck{Index: stopIndex, At: s.now}
	if r, g := s.reconcile(), s.task(gone.ID); !r.Empty() || !g.Draining() {
		t.Fatalf("released with one of two acks: %+v", s.task(gone.ID).Drain)
	}
	s.acks["n2"] = api.TableAck{Index: stopIndex + 5, At: s.now}
	s.reconcile()
	got := s.task(gone.ID)
	if !released(got) || !got.Drain.Done.Equal(s.now) || !strings.Contains(got.Drain.Message, "every ready node") {
		t.Fatalf("both nodes acked, drain %+v", got.Drain)
	}
	s.agent()
	if st := s.task(gone.ID).Status.State; st != api.TaskShutdown {
		t.Fatalf("released task is %s, want it stopped", st)
	}
}

func TestDrainAckNeverArrives(t *testing.T) {
	s := drainSim(t, 2, replicated("web", 2))
	// Long enough that the nodes are not marked down meanwhile.
	s.cluster.NodeDownGrace = api.Duration(time.Minute)
	s.service("web").Spec.Replicas = 0
	s.service("web").SpecVersion++
	s.reconcile()
	start := s.now
	for _, id := range s.draining("web") {
		if d := s.task(id).Drain; d == nil {
			t.Fatalf("task %s not draining", id)
		}
	}
	// n1 acks, n2 is cut off but not (yet) down: its heartbeat is fresh
	// enough inside the down grace.
	s.acks["n1"] = api.TableAck{Index: s.version + 1, At: s.now}
	s.now = start.Add(DefaultDrainTimeout - time.Millisecond)
	s.reconcile()
	if n := len(s.draining("web")); n != 2 {
		t.Fatalf("%d of 2 tasks still draining just before the timeout", n)
	}
	s.now = start.Add(DefaultDrainTimeout)
	s.reconcile()
	if left := s.draining("web"); len(left) != 0 {
		t.Fatalf("still draining at the timeout: %v", left)
	}
	for _, x := range s.tasks {
		if x.Drain == nil {
			continue
		}
		if !strings.Contains(x.Drain.Message, "drain timeout") || !strings.Contains(x.Drain.Message, "n2") || strings.Contains(x.Drain.Message, "n1") {
			t.Errorf("timeout message %q should name n2 only", x.Drain.Message)
		}
	}
}

func TestDrainTimeoutFromClusterState(t *testing.T) {
	s := drainSim(t, 1, replicated("web", 1))
	s.service("web").Spec.Replicas = 0
	s.service("web").SpecVersion++
	s.reconcile()
	cs := s.state()
	cs.DrainTimeout = time.Second
	cs.Now = s.now.Add(time.Second)
	delete(cs.Acks, "n1")
	r := Reconcile(cs, s.ids)
	if len(r.Update) != 1 || !released(r.Update[0]) {
		t.Fatalf("a 1s drain timeout did not release after 1s: %+v", r.Update)
	}
}

func TestDrainNodeDownNotWaitedFor(t *testing.T) {
	s := drainSim(t, 3, replicated("web", 2))
	// The node without a task of web goes down; the others ack.
	used := map[string]bool{}
	for _, x := range s.running("web") {
		used[x.NodeID] = true
	}
	idle := ""
	for _, n := range s.nodes {
		if !used[n.ID] {
			idle = n.ID
		}
	}
	if len(used) != 2 || idle == "" {
		t.Fatalf("web runs on %v; want two of three nodes", used)
	}
	s.node(idle).Status.State = api.NodeDown
	s.service("web").Spec.Replicas = 1
	s.service("web").SpecVersion++
	s.reconcile()
	if len(s.draining("web")) != 1 {
		t.Fatalf("draining %v", s.draining("web"))
	}
	s.ackAll()
	delete(s.acks, idle)
	s.reconcile()
	if left := s.draining("web"); len(left) != 0 {
		t.Fatalf("a down node was waited for: still draining %v", left)
	}
}

func TestDrainUnheardNodeWaitedFor(t *testing.T) {
	// A new leader has heard from nobody yet: a ready node it has no ack
	// of may still route to the task.
	s := drainSim(t, 2, replicated("web", 2))
	s.service("web").Spec.Replicas = 1
	s.service("web").SpecVersion++
	s.reconcile()
	s.acks = map[string]api.TableAck{"n1": {Index: s.version + 10}}
	s.reconcile()
	if len(s.draining("web")) != 1 {
		t.Fatal("released without hearing from n2")
	}
}

func TestDrainSeveralTasks(t *testing.T) {
	svc := replicated("web", 4)
	svc.Spec.Update.Parallelism = 2
	s := drainSim(t, 2, svc)
	s.updateSpec("web", nil)
	s.reconcile() // stop-first: two old tasks stop
	first := s.draining("web")
	if len(first) != 2 {
		t.Fatalf("draining %v, want the first batch of 2", first)
	}
	firstIndex := s.version
	// Nothing replaces them while they drain: stop-first waits for the
	// old task to be gone.
	s.agent()
	r := s.reconcile()
	if len(r.Create) != 0 {
		t.Fatalf("started %d successors while their predecessors drain", len(r.Create))
	}
	for _, id := range first {
		if d := s.task(id).Drain; d.Index != firstIndex {
			t.Fatalf("task %s waits for index %d, want %d", id, d.Index, firstIndex)
		}
	}
	// An ack short of the index releases nothing; reaching it releases both.
	for _, n := range []string{"n1", "n2"} {
		s.acks[n] = api.TableAck{Index: firstIndex - 1}
	}
	s.reconcile()
	if len(s.draining("web")) != 2 {
		t.Fatal("released on an ack older than the stop")
	}
	s.ackAll()
	s.reconcile()
	if left := s.draining("web"); len(left) != 0 {
		t.Fatalf("still draining %v", left)
	}
	// The rollout goes on to completion with acks following each write.
	for i := 0; i < 30 && s.service("web").Update.State != api.UpdateCompleted; i++ {
		s.step()
		s.ackAll()
	}
	if st := s.service("web").Update.State; st != api.UpdateCompleted {
		t.Fatalf("rollout %s, want completed", st)
	}
	for _, x := range s.tasks {
		if x.Status.State == api.TaskShutdown && (x.Drain == nil || x.Drain.Done.IsZero()) {
			t.Errorf("task %s stopped without a released drain: %+v", x.ID, x.Drain)
		}
	}
}

func TestDrainServiceRemoved(t *testing.T) {
	s := drainSim(t, 2, replicated("web", 2), replicated("api", 2))
	s.services = s.services[:1] // service rm api
	r := s.reconcile()
	n := 0
	for _, u := range r.Update {
		if u.ServiceID == "api" {
			n++
			if u.DesiredState != api.TaskRemove || u.Drain == nil {
				t.Errorf("task %s of a removed service: desired %s, drain %+v", u.ID, u.DesiredState, u.Drain)
			}
		}
	}
	if n != 2 {
		t.Fatalf("%d tasks of api stopped, want 2", n)
	}
	s.agent()
	s.reconcile()
	if len(s.draining("api")) != 2 {
		t.Fatal("removed service's tasks released before any ack")
	}
	s.ackAll()
	s.reconcile()
	s.agent()
	s.reconcile()
	for _, x := range s.tasks {
		if x.ServiceID == "api" {
			t.Errorf("task %s of the removed service kept (%s)", x.ID, x.Status.State)
		}
	}
	if got := len(s.running("web")); got != 2 {
		t.Errorf("web has %d running tasks, want 2", got)
	}
}

func TestDrainNodeDrain(t *testing.T) {
	s := drainSim(t, 2, replicated("web", 2))
	s.node("n2").Spec.Availability = api.AvailabilityDrain
	s.reconcile()
	var onN2 []string
	for _, x := range s.tasks {
		if x.NodeID == "n2" && x.Draining() {
			onN2 = append(onN2, x.ID)
		}
	}
	if len(onN2) != 1 {
		t.Fatalf("node drain: %v draining on n2", onN2)
	}
	s.ackAll()
	s.step()
	if st := s.task(onN2[0]).Status.State; st != api.TaskShutdown {
		t.Fatalf("drained task is %s after the acks", st)
	}
}

func TestDrainNotNeeded(t *testing.T) {
	cases := []struct {
		name string
		mut  func(*api.Task)
	}{
		{"crashed", func(t *api.Task) { t.Status.State = api.TaskFailed }},
		{"no address", func(t *api.Task) { t.Status.Addr = "" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := drainSim(t, 1, replicated("web", 1))
			tc.mut(&s.tasks[0])
			s.service("web").Spec.Replicas = 0
			s.service("web").SpecVersion++
			s.reconcile()
			if x := s.tasks[0]; x.Drain != nil || x.Draining() {
				t.Fatalf("task %s got a drain: %+v", tc.name, x.Drain)
			}
		})
	}
}

func TestDrainUntracked(t *testing.T) {
	// Callers that track no acks (nil) never hold a stop beyond one pass.
	s := drainSim(t, 1, replicated("web", 1))
	s.acks = nil
	s.service("web").Spec.Replicas = 0
	s.service("web").SpecVersion++
	s.reconcile()
	s.reconcile()
	if x := s.tasks[0]; !released(x) || !strings.Contains(x.Drain.Message, "no service-table") {
		t.Fatalf("untracked drain: %+v", x.Drain)
	}
}
