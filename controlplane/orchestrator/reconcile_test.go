package orchestrator

import (
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

func slotsOf(ts []api.Task) []uint64 {
	var out []uint64
	for _, t := range ts {
		out = append(out, t.Slot)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func nodesOf(ts []api.Task) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.NodeID)
	}
	sort.Strings(out)
	return out
}

func TestReplicatedCreate(t *testing.T) {
	s := newSim(t, 2)
	svc := replicated("web", 3)
	svc.SpecVersion = 7
	svc.Spec.Version = "blue"
	s.services = []api.Service{svc}
	r := s.reconcile()
	if got := slotsOf(r.Create); !reflect.DeepEqual(got, []uint64{1, 2, 3}) {
		t.Fatalf("created slots %v", got)
	}
	for _, c := range r.Create {
		if c.Status.State != api.TaskPending || c.DesiredState != api.TaskRunning || c.SpecVersion != 7 ||
			c.Version != "blue" || c.ServiceName != "web" || c.NodeID != "" || !reflect.DeepEqual(c.Spec, svc.Spec.Task) {
			t.Errorf("bad new task %+v", c)
		}
	}
	if len(r.Services) != 0 {
		t.Errorf("a first deployment is not a rollout: %+v", r.Services)
	}
	// Once the tasks exist nothing more happens.
	if again := Reconcile(s.state(), s.ids); !again.Empty() {
		t.Fatalf("second pass not empty: %+v", again)
	}
}

func TestScale(t *testing.T) {
	cases := []struct {
		name     string
		from, to uint64
	}{
		{"up", 2, 5}, {"down", 5, 2}, {"to zero", 3, 0}, {"same", 3, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, 3)
			s.services = []api.Service{replicated("web", tc.from)}
			s.run(3)
			before := map[string]bool{}
			for _, x := range s.running("web") {
				before[x.ID] = true
			}
			// Scaling bumps the spec version but keeps the template.
			svc := s.service("web")
			svc.Spec.Replicas = tc.to
			svc.SpecVersion++
			r := s.reconcile()
			for _, u := range r.Update {
				if u.DesiredState != api.TaskRemove || u.Slot <= tc.to {
					t.Errorf("scale %d→%d changed task %s slot %d to %s", tc.from, tc.to, u.ID, u.Slot, u.DesiredState)
				}
			}
			s.run(4)
			run := s.running("web")
			var want []uint64
			for i := uint64(1); i <= tc.to; i++ {
				want = append(want, i)
			}
			if got := slotsOf(run); !reflect.DeepEqual(got, want) {
				t.Fatalf("running slots %v, want %v", got, want)
			}
			// Scaling does not churn the tasks that stay.
			for _, x := range run {
				if x.Slot <= tc.from && !before[x.ID] {
					t.Errorf("slot %d was replaced by %s", x.Slot, x.ID)
				}
			}
			// Removed tasks are deleted once stopped, not kept as history.
			for _, x := range s.tasks {
				if x.Slot > tc.to {
					t.Errorf("task %s of removed slot %d still stored", x.ID, x.Slot)
				}
			}
		})
	}
}

func TestGlobal(t *testing.T) {
	s := newSim(t, 4)
	s.node("n2").Spec.Availability = api.AvailabilityDrain
	s.node("n3").Spec.Labels = map[string]string{"site": "b"}
	s.node("n4").Spec.Availability = api.AvailabilityPause
	svc := global("mon")
	svc.Spec.Task.Placement.Constraints = []string{"node.labels.site!=b"}
	s.services = []api.Service{svc}
	r := s.reconcile()
	if got := nodesOf(r.Create); !reflect.DeepEqual(got, []string{"n1"}) {
		t.Fatalf("created on %v, want [n1] (drained, mismatched and paused nodes get none)", got)
	}
	for _, c := range r.Create {
		if c.Slot != 0 {
			t.Errorf("global task has slot %d", c.Slot)
		}
	}
	s.run(3)

	// A node joins: it gets one.
	s.addNode("n5")
	s.run(3)
	if got := nodesOf(s.running("mon")); !reflect.DeepEqual(got, []string{"n1", "n5"}) {
		t.Fatalf("running on %v after join", got)
	}
	// Paused keeps what it has: un-pause n4 to get a task, pause it again.
	s.node("n4").Spec.Availability = api.AvailabilityActive
	s.run(3)
	s.node("n4").Spec.Availability = api.AvailabilityPause
	s.run(3)
	if got := nodesOf(s.running("mon")); !reflect.DeepEqual(got, []string{"n1", "n4", "n5"}) {
		t.Fatalf("running on %v after pause", got)
	}
	// Drain removes it, and so does a node leaving the cluster.
	s.node("n5").Spec.Availability = api.AvailabilityDrain
	s.nodes = s.nodes[:4] // n5 removed entirely after being drained
	s.node("n1").Spec.Availability = api.AvailabilityDrain
	s.run(3)
	if got := nodesOf(s.running("mon")); !reflect.DeepEqual(got, []string{"n4"}) {
		t.Fatalf("running on %v after drain/leave", got)
	}
	for _, x := range s.tasks {
		if x.NodeID == "n1" && x.Status.State != api.TaskShutdown {
			t.Errorf("task on drained n1 is %s", x.Status.State)
		}
	}
}

func TestDrainAndPauseReplicated(t *testing.T) {
	s := newSim(t, 3)
	s.services = []api.Service{replicated("web", 6)}
	s.run(3)
	onN1 := 0
	for _, x := range s.running("web") {
		if x.NodeID == "n1" {
			onN1++
		}
	}
	if onN1 == 0 {
		t.Fatal("setup: nothing on n1")
	}
	// Pause keeps them.
	s.node("n1").Spec.Availability = api.AvailabilityPause
	if r := s.reconcile(); !r.Empty() {
		t.Fatalf("pause changed something: %+v", r)
	}
	// Drain shuts them down and replaces them elsewhere in the same pass.
	s.node("n1").Spec.Availability = api.AvailabilityDrain
	r := s.reconcile()
	if len(r.Update) != onN1 || len(r.Create) != onN1 {
		t.Fatalf("drain: %d updates, %d creates, want %d each", len(r.Update), len(r.Create), onN1)
	}
	for _, u := range r.Update {
		if u.NodeID != "n1" || u.DesiredState != api.TaskShutdown {
			t.Errorf("drain updated %s on %s to %s", u.ID, u.NodeID, u.DesiredState)
		}
	}
	s.run(4)
	run := s.running("web")
	if got := slotsOf(run); !reflect.DeepEqual(got, []uint64{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("slots %v", got)
	}
	for _, x := range run {
		if x.NodeID == "n1" {
			t.Errorf("task %s still on drained node", x.ID)
		}
	}
}

func TestNodeDownAndBack(t *testing.T) {
	s := newSim(t, 3)
	s.services = []api.Service{replicated("web", 3)}
	s.run(3)
	var lost []string
	for _, x := range s.running("web") {
		if x.NodeID == "n2" {
			lost = append(lost, x.ID)
		}
	}
	if len(lost) == 0 {
		t.Fatal("setup: nothing on n2")
	}
	s.cut["n2"] = true
	// Within the grace nothing happens, but the leader is told when to look again.
	s.now = s.now.Add(5 * time.Second)
	s.agent() // the others keep heartbeating
	r := s.reconcile()
	if len(r.NodesDown) != 0 || r.NextEval.IsZero() || !r.NextEval.After(s.now) {
		t.Fatalf("inside grace: down=%v next=%v", r.NodesDown, r.NextEval)
	}
	s.now = s.now.Add(10 * time.Second)
	s.agent()
	r = s.reconcile()
	if len(r.NodesDown) != 1 || r.NodesDown[0].ID != "n2" || r.NodesDown[0].Status.State != api.NodeDown {
		t.Fatalf("nodes down %+v", r.NodesDown)
	}
	// Down, not dead: the node's tasks keep their desired state (it may be
	// only cut off), and past the grace their slots are refilled elsewhere.
	for _, u := range r.Update {
		if u.NodeID == "n2" && (u.Status.State != api.TaskUnknown || u.DesiredState != api.TaskRunning) {
			t.Errorf("task %s of the down node written %s/%s, want unknown/running", u.ID, u.Status.State, u.DesiredState)
		}
	}
	if len(r.Create) != len(lost) {
		t.Fatalf("created %d, want %d", len(r.Create), len(lost))
	}
	s.run(3)
	// The node comes back with its originals running: keep-original adopts
	// them and stops the replacements, so no slot runs twice.
	delete(s.cut, "n2")
	s.node("n2").Status.State = api.NodeReady
	s.node("n2").Status.Heartbeat = s.now
	s.run(3)
	if got := slotsOf(s.running("web")); !reflect.DeepEqual(got, []uint64{1, 2, 3}) {
		t.Fatalf("slots after return %v", got)
	}
	for _, x := range s.tasks {
		for _, id := range lost {
			if x.ID == id && (x.DesiredState != api.TaskRunning || x.Status.State != api.TaskRunning) {
				t.Errorf("original %s not adopted: %s/%s", id, x.Status.State, x.DesiredState)
			}
		}
	}
}

func TestFailedTasks(t *testing.T) {
	failed := func(restarts uint64) api.TaskStatus {
		return api.TaskStatus{State: api.TaskFailed, Restarts: restarts, Err: "exit 1"}
	}
	cases := []struct {
		name    string
		policy  api.RestartPolicy
		history []api.TaskStatus // oldest first; the last is the latest task of slot 1
		replace bool
	}{
		{"any, failed", api.RestartPolicy{Condition: api.RestartAny}, []api.TaskStatus{failed(0)}, true},
		{"none, failed", api.RestartPolicy{Condition: api.RestartNone}, []api.TaskStatus{failed(0)}, false},
		{"on-failure, failed", api.RestartPolicy{Condition: api.RestartOnFailure}, []api.TaskStatus{failed(0)}, true},
		{"on-failure, complete", api.RestartPolicy{Condition: api.RestartOnFailure}, []api.TaskStatus{{State: api.TaskComplete}}, false},
		{"any, complete", api.RestartPolicy{Condition: api.RestartAny}, []api.TaskStatus{{State: api.TaskComplete}}, true},
		{"none, rejected", api.RestartPolicy{Condition: api.RestartNone}, []api.TaskStatus{{State: api.TaskRejected}}, true},
		{"max 3, agent restarted twice", api.RestartPolicy{Condition: api.RestartAny, MaxAttempts: 3}, []api.TaskStatus{failed(2)}, false},
		{"max 3, agent restarted once", api.RestartPolicy{Condition: api.RestartAny, MaxAttempts: 3}, []api.TaskStatus{failed(1)}, true},
		{"max 3 across replacements", api.RestartPolicy{Condition: api.RestartAny, MaxAttempts: 3}, []api.TaskStatus{failed(0), failed(0), failed(0)}, false},
		{"max 3, an orphan does not count", api.RestartPolicy{Condition: api.RestartAny, MaxAttempts: 3}, []api.TaskStatus{failed(0), {State: api.TaskOrphaned}, failed(0)}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, 1)
			svc := replicated("web", 1)
			svc.Spec.Task.Restart = tc.policy
			s.services = []api.Service{svc}
			for i, st := range tc.history {
				st.Timestamp = t0.Add(time.Duration(i) * time.Second)
				s.tasks = append(s.tasks, api.Task{ID: s.ids(), ServiceID: "web", Slot: 1, NodeID: "n1", Spec: svc.Spec.Task,
					SpecVersion: 1, Version: "v1", DesiredState: api.TaskRunning, Status: st,
					Meta: api.Meta{CreatedAt: t0.Add(time.Duration(i) * time.Second)}})
			}
			s.now = t0.Add(time.Minute)
			r := s.reconcile()
			if got := len(r.Create) == 1; got != tc.replace {
				t.Fatalf("replaced = %v, want %v (creates %d)", got, tc.replace, len(r.Create))
			}
			// The stopped task is no longer desired running either way.
			latest := r.Update[len(r.Update)-1]
			if latest.DesiredState != api.TaskShutdown {
				t.Errorf("latest task desired %s", latest.DesiredState)
			}
		})
	}
}

func TestHistoryTrimmed(t *testing.T) {
	s := newSim(t, 1)
	svc := replicated("web", 1)
	s.services = []api.Service{svc}
	for i := 0; i < HistoryLimit+3; i++ {
		s.tasks = append(s.tasks, api.Task{ID: s.ids(), ServiceID: "web", Slot: 1, NodeID: "n1", Spec: svc.Spec.Task,
			SpecVersion: 1, DesiredState: api.TaskShutdown, Status: api.TaskStatus{State: api.TaskFailed},
			Meta: api.Meta{CreatedAt: t0.Add(time.Duration(i) * time.Second)}})
	}
	r := s.reconcile()
	var del []string
	for _, d := range r.Delete {
		del = append(del, d.ID)
	}
	if !reflect.DeepEqual(del, []string{"t0001", "t0002", "t0003"}) {
		t.Fatalf("deleted %v, want the three oldest", del)
	}
	if len(r.Create) != 1 {
		t.Fatalf("slot not refilled: %d creates", len(r.Create))
	}
}

func TestDeletedService(t *testing.T) {
	s := newSim(t, 2)
	s.services = []api.Service{replicated("web", 2)}
	s.run(3)
	s.tasks = append(s.tasks, api.Task{ID: "never-placed", ServiceID: "web", Slot: 9, DesiredState: api.TaskRunning,
		Status: api.TaskStatus{State: api.TaskPending}})
	s.services = nil
	r := s.reconcile()
	if len(r.Update) != 2 || len(r.Delete) != 1 || r.Delete[0].ID != "never-placed" {
		t.Fatalf("updates %d deletes %+v", len(r.Update), r.Delete)
	}
	for _, u := range r.Update {
		if u.DesiredState != api.TaskRemove {
			t.Errorf("%s desired %s", u.ID, u.DesiredState)
		}
	}
	s.run(3)
	if len(s.tasks) != 0 {
		t.Fatalf("%d tasks left", len(s.tasks))
	}
}

// TestRestartedLeaderKeepsTasks is the one-node cluster whose daemon (leader
// and agent in one process) was down for 12 s: the store still says the node
// was last heard of when its status last changed, long before, because
// unchanged heartbeats live only in the leader's memory. A leader that has
// listened for less than the grace must not mark the node down nor replace
// its tasks, however old the stored heartbeat; once it has listened for a
// whole grace without a heartbeat it must.
func TestRestartedLeaderKeepsTasks(t *testing.T) {
	grace := 30 * time.Second
	lastChange := t0                     // the node registered, nothing changed since
	crash := t0.Add(10 * time.Minute)    // heartbeats were in the dead leader's memory
	since := crash.Add(12 * time.Second) // the daemon is back, its store caught up
	s := newSim(t, 1)
	s.cluster.NodeDownGrace = api.Duration(grace)
	s.services = []api.Service{replicated("web", 3)}
	s.run(3)
	if got := len(s.running("web")); got != 3 {
		t.Fatalf("setup: %d running, want 3", got)
	}
	for i := range s.tasks {
		s.tasks[i].Status.Timestamp = lastChange
	}
	s.node("n1").Status.Heartbeat = lastChange

	for _, tc := range []struct {
		name     string
		now      time.Time
		wantDown bool
	}{
		{"first plan", since, false},
		{"agent not heard yet, inside the grace", since.Add(grace - time.Second), false},
		{"a whole grace without a heartbeat", since.Add(grace + time.Second), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := s.state()
			cs.Now, cs.LeaderSince = tc.now, since
			r := Reconcile(cs, s.ids)
			if down := len(r.NodesDown) == 1; down != tc.wantDown {
				t.Fatalf("nodes down %v, want down %v", r.NodesDown, tc.wantDown)
			}
			if tc.wantDown {
				return
			}
			if len(r.Update) != 0 || len(r.Create) != 0 {
				t.Fatalf("inside the grace: updates %d creates %d, want none", len(r.Update), len(r.Create))
			}
			if want := since.Add(grace); !r.NextEval.Equal(want) {
				t.Errorf("next eval %v, want %v (the grace counted from LeaderSince)", r.NextEval, want)
			}
		})
	}

	// Without the floor the same state orphans everything: the case above
	// is the regression and not a tautology.
	cs := s.state()
	cs.Now = since
	if r := Reconcile(cs, s.ids); len(r.NodesDown) != 1 || len(r.Create) != 3 {
		t.Fatalf("without LeaderSince: down %d created %d, want 1 and 3", len(r.NodesDown), len(r.Create))
	}
}
