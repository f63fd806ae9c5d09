package orchestrator

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// versions counts the service's live tasks per spec version.
func versions(s *sim, svcID string) map[uint64]int {
	out := map[uint64]int{}
	for _, t := range s.liveTasks(svcID) {
		out[t.SpecVersion]++
	}
	return out
}

func TestRollingUpdateBatches(t *testing.T) {
	cases := []struct {
		name        string
		order       string
		parallelism uint64
		replicas    uint64
		// maxUnfinished is the most tasks that may exist at any moment.
		maxUnfinished int
	}{
		{"stop-first p1", OrderStopFirst, 1, 4, 4},
		{"stop-first p2", OrderStopFirst, 2, 5, 5},
		{"start-first p1", OrderStartFirst, 1, 4, 5},
		{"start-first p3", OrderStartFirst, 3, 4, 7},
		{"default order, all at once", "", 0, 3, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, 3)
			svc := replicated("web", tc.replicas)
			svc.Spec.Update = api.UpdateConfig{Strategy: api.StrategyRolling, Parallelism: tc.parallelism, Order: tc.order}
			s.services = []api.Service{svc}
			s.run(3)
			s.updateSpec("web", nil)
			maxNewPerStep := 0
			seenNew := 0
			for i := 0; i < 30; i++ {
				s.step()
				if u := s.unfinished("web"); u > tc.maxUnfinished {
					t.Fatalf("step %d: %d unfinished tasks, max %d", i, u, tc.maxUnfinished)
				}
				created := 0
				for _, c := range s.last.Create {
					if c.SpecVersion == 2 {
						created++
					}
				}
				seenNew += created
				maxNewPerStep = max(maxNewPerStep, created)
			}
			p := int(tc.parallelism)
			if p == 0 {
				p = int(tc.replicas)
			}
			if maxNewPerStep > p {
				t.Errorf("a batch started %d tasks, parallelism %d", maxNewPerStep, p)
			}
			if seenNew != int(tc.replicas) {
				t.Errorf("created %d new tasks, want %d (one per slot)", seenNew, tc.replicas)
			}
			if got := versions(s, "web"); !reflect.DeepEqual(got, map[uint64]int{2: int(tc.replicas)}) {
				t.Fatalf("live versions %v", got)
			}
			if u := s.service("web").Update; u == nil || u.State != api.UpdateCompleted || u.CompletedAt.IsZero() {
				t.Fatalf("update status %+v", u)
			}
		})
	}
}

func TestRollingUpdateDelay(t *testing.T) {
	s := newSim(t, 2)
	svc := replicated("web", 3)
	svc.Spec.Update = api.UpdateConfig{Parallelism: 1, Order: OrderStartFirst, Delay: api.Duration(10 * time.Second)}
	s.services = []api.Service{svc}
	s.run(3)
	s.updateSpec("web", nil)
	var batches []time.Time
	for i := 0; i < 60; i++ {
		s.step()
		for _, c := range s.last.Create {
			if c.SpecVersion == 2 {
				batches = append(batches, s.now.Add(-time.Second))
			}
		}
		if s.last.Empty() && !s.last.NextEval.IsZero() && s.last.NextEval.Before(s.now.Add(-time.Second)) {
			t.Fatalf("NextEval %v is in the past at %v", s.last.NextEval, s.now)
		}
	}
	if len(batches) != 3 {
		t.Fatalf("%d batches", len(batches))
	}
	for i := 1; i < len(batches); i++ {
		if gap := batches[i].Sub(batches[i-1]); gap < 10*time.Second {
			t.Errorf("batch %d started %s after the previous one, delay is 10s", i, gap)
		}
	}
}

func TestRollingUpdateFailure(t *testing.T) {
	for _, action := range []string{FailurePause, FailureRollback, FailureContinue} {
		t.Run(action, func(t *testing.T) {
			s := newSim(t, 2)
			svc := replicated("web", 4)
			svc.Spec.Update = api.UpdateConfig{Parallelism: 1, FailureAction: action}
			s.services = []api.Service{svc}
			s.run(3)
			s.updateSpec("web", nil)
			s.fail = func(t *api.Task) bool { return t.SpecVersion == 2 }
			s.run(20)
			u := s.service("web").Update
			switch action {
			case FailurePause:
				if u.State != api.UpdatePaused || !strings.Contains(u.Message, "failed") {
					t.Fatalf("status %+v", u)
				}
				// Paused: the untouched slots keep the old version.
				if v := versions(s, "web"); v[1] < 3 {
					t.Fatalf("live versions %v", v)
				}
			case FailureRollback:
				svc := s.service("web")
				if u.State != api.UpdateRolledBack || svc.PreviousSpec != nil || svc.SpecVersion != 3 {
					t.Fatalf("status %+v spec version %d", u, svc.SpecVersion)
				}
				if !reflect.DeepEqual(svc.Spec.Task.Container.Env, []string(nil)) {
					t.Fatalf("spec not reverted: %v", svc.Spec.Task.Container.Env)
				}
				if got := len(s.running("web")); got != 4 {
					t.Fatalf("%d running after rollback", got)
				}
				for _, x := range s.running("web") {
					if x.SpecVersion == 2 {
						t.Fatalf("task %s still runs the failed spec", x.ID)
					}
				}
				if u.CompletedAt.IsZero() {
					t.Fatalf("rollback never completed: %+v", u)
				}
			case FailureContinue:
				// Not paused, not reverted: the failing slot keeps being
				// retried under the restart policy. (The next batch waits
				// for it to become ready; see the package report.)
				if u.State != api.UpdateUpdating || s.service("web").SpecVersion != 2 {
					t.Fatalf("status %+v", u)
				}
				tries := 0
				for _, x := range s.tasks {
					if x.SpecVersion == 2 {
						tries++
					}
				}
				if v := versions(s, "web"); v[1] != 3 || tries < 2 {
					t.Fatalf("live versions %v, %d tries of the new spec", v, tries)
				}
			}
		})
	}
}

func TestCanary(t *testing.T) {
	s := newSim(t, 3)
	svc := replicated("web", 4)
	svc.Spec.Version = "v1"
	svc.Spec.Update = api.UpdateConfig{Strategy: api.StrategyCanary, CanaryWeight: 30}
	s.services = []api.Service{svc}
	s.run(3)
	s.updateSpec("web", func(sp *api.ServiceSpec) { sp.Version = "v2" })
	s.run(5)
	u := s.service("web").Update
	if u.State != api.UpdateAwaitingPromote || !reflect.DeepEqual(u.Weights, map[string]uint32{"v1": 70, "v2": 30}) {
		t.Fatalf("status %+v", u)
	}
	// ceil(4 × 30 / 100) = 2 canaries; the old version keeps 4 - floor(1.2)
	// = 3 tasks for its 70 %.
	if v := versions(s, "web"); !reflect.DeepEqual(v, map[uint64]int{1: 3, 2: 2}) {
		t.Fatalf("live versions %v", v)
	}
	if st := s.service("web").Status; !st.Converged || st.Ready != 4 || len(st.Versions) != 2 ||
		st.Versions[0].Version != "v2" || st.Versions[0].Ready != 2 || st.Versions[0].Desired != 2 || *st.Versions[0].Weight != 30 {
		t.Fatalf("status %+v %+v", st, st.Versions)
	}
	// Waiting is stable.
	if r := s.reconcile(); !r.Empty() {
		t.Fatalf("awaiting promote changed %+v", r)
	}
	promoted := Promote(*s.service("web"), s.now)
	if promoted.Update.State != api.UpdateUpdating || !reflect.DeepEqual(promoted.Update.Weights, u.Weights) {
		t.Fatalf("promoted %+v", promoted.Update)
	}
	*s.service("web") = promoted
	// Until every new replica is ready the weights stay where they were.
	for i := 0; i < 6; i++ {
		s.step()
		if u := s.service("web").Update; u.State == api.UpdateUpdating && u.Weights["v2"] != 30 {
			t.Fatalf("step %d: weights %v before the new version is complete", i, u.Weights)
		}
	}
	u = s.service("web").Update
	if u.State != api.UpdateCompleted || !reflect.DeepEqual(u.Weights, map[string]uint32{"v1": 0, "v2": 100}) || u.KeepUntil.IsZero() {
		t.Fatalf("after promote %+v", u)
	}
	if v := versions(s, "web"); !reflect.DeepEqual(v, map[uint64]int{1: 3, 2: 4}) {
		t.Fatalf("keep window: %v", v)
	}
	if got := slotsOf(s.running("web")); !reflect.DeepEqual(got, []uint64{1, 2, 2, 3, 3, 4, 4}) {
		t.Fatalf("slots %v", got)
	}
	if !s.service("web").Status.Converged {
		t.Fatalf("promotion done but not converged: %+v", s.service("web").Status)
	}
	s.now = u.KeepUntil
	s.agent() // the nodes heartbeat across the jump: it ends the keep window, not the nodes
	s.run(3)
	if v := versions(s, "web"); !reflect.DeepEqual(v, map[uint64]int{2: 4}) {
		t.Fatalf("after the keep window %v", v)
	}
	if u := s.service("web").Update; u.State != api.UpdateCompleted || u.Weights != nil || !u.KeepUntil.IsZero() {
		t.Fatalf("final status %+v", u)
	}
}

func TestBlueGreen(t *testing.T) {
	s := newSim(t, 3)
	svc := replicated("web", 3)
	svc.Spec.Version = "blue"
	svc.Spec.Update = api.UpdateConfig{Strategy: api.StrategyBlueGreen, Keep: api.Duration(time.Minute)}
	s.services = []api.Service{svc}
	s.run(3)
	s.updateSpec("web", func(sp *api.ServiceSpec) { sp.Version = "green" })
	s.run(4)
	u := s.service("web").Update
	if u.State != api.UpdateAwaitingPromote || !reflect.DeepEqual(u.Weights, map[string]uint32{"blue": 100, "green": 0}) {
		t.Fatalf("status %+v", u)
	}
	if v := versions(s, "web"); !reflect.DeepEqual(v, map[uint64]int{1: 3, 2: 3}) {
		t.Fatalf("a full green set next to blue: %v", v)
	}
	p := Promote(*s.service("web"), s.now)
	if !reflect.DeepEqual(p.Update.Weights, map[string]uint32{"blue": 0, "green": 100}) {
		t.Fatalf("promote weights %v", p.Update.Weights)
	}
	*s.service("web") = p
	r := s.reconcile()
	// Green is already running: the promotion completes in one pass and
	// blue stays, without traffic, for the keep window.
	if len(r.Update) != 0 || len(r.Create) != 0 {
		t.Fatalf("promote pass: %d updates %d creates", len(r.Update), len(r.Create))
	}
	u = s.service("web").Update
	if u.State != api.UpdateCompleted || !u.KeepUntil.Equal(s.now.Add(time.Minute)) || r.NextEval.IsZero() || r.NextEval.After(u.KeepUntil) {
		t.Fatalf("after promote %+v, next eval %v", u, r.NextEval)
	}
	s.run(4)
	if v := versions(s, "web"); !reflect.DeepEqual(v, map[uint64]int{1: 3, 2: 3}) {
		t.Fatalf("keep window %v", v)
	}
	s.now = u.KeepUntil
	s.agent() // the nodes heartbeat across the jump: it ends the keep window, not the nodes
	s.run(4)
	if v := versions(s, "web"); !reflect.DeepEqual(v, map[uint64]int{2: 3}) {
		t.Fatalf("after the keep window %v", v)
	}
	if u := s.service("web").Update; u.State != api.UpdateCompleted || u.Weights != nil {
		t.Fatalf("final status %+v", u)
	}
}

func TestCanaryRollbackRemovesCanaries(t *testing.T) {
	s := newSim(t, 2)
	svc := replicated("web", 3)
	svc.Spec.Update = api.UpdateConfig{Strategy: api.StrategyCanary, CanaryWeight: 30}
	s.services = []api.Service{svc}
	s.run(3)
	before := map[string]bool{}
	for _, x := range s.running("web") {
		before[x.ID] = true
	}
	s.updateSpec("web", nil)
	s.run(3)
	if v := versions(s, "web"); !reflect.DeepEqual(v, map[uint64]int{1: 3, 2: 1}) {
		t.Fatalf("canary %v", v)
	}
	rb, err := Rollback(*s.service("web"), s.now, "operator")
	if err != nil {
		t.Fatal(err)
	}
	// The old version is all there: the weights flip back in the rollback's
	// own write.
	if !reflect.DeepEqual(rb.Update.Weights, map[string]uint32{"v1": 100, "v2": 0}) {
		t.Fatalf("rollback weights %v", rb.Update.Weights)
	}
	*s.service("web") = rb
	s.run(4)
	run := s.running("web")
	if len(run) != 3 {
		t.Fatalf("%d running", len(run))
	}
	for _, x := range run {
		if !before[x.ID] {
			t.Errorf("rollback replaced original task with %s", x.ID)
		}
	}
	if u := s.service("web").Update; u.State != api.UpdateRolledBack || u.CompletedAt.IsZero() || u.Weights != nil {
		t.Fatalf("status %+v", u)
	}
	if st := s.service("web").Status; !st.Converged || st.Ready != 3 {
		t.Fatalf("not converged after rollback: %+v", st)
	}
}

func TestPromoteAndRollbackFunctions(t *testing.T) {
	prev := api.ServiceSpec{Name: "web", Replicas: 1}
	svc := api.Service{ID: "web", SpecVersion: 4, Spec: api.ServiceSpec{Name: "web", Replicas: 2}, PreviousSpec: &prev,
		Update: &api.UpdateStatus{State: api.UpdateUpdating}}
	if got := Promote(svc, t0); !reflect.DeepEqual(got, svc) {
		t.Errorf("Promote of a service not awaiting promotion changed it: %+v", got.Update)
	}
	rb, err := Rollback(svc, t0, "because")
	if err != nil || !reflect.DeepEqual(rb.Spec, prev) || rb.PreviousSpec != nil || rb.SpecVersion != 5 ||
		rb.Update.State != api.UpdateRolledBack || rb.Update.Message != "because" || !rb.Update.StartedAt.Equal(t0) {
		t.Fatalf("Rollback = %+v, %v", rb, err)
	}
	if svc.Spec.Replicas != 2 || svc.PreviousSpec == nil {
		t.Error("Rollback modified its argument")
	}
	if _, err := Rollback(rb, t0, ""); err != ErrNoPreviousSpec {
		t.Errorf("second rollback err = %v", err)
	}
}

func TestGlobalRollingUpdateAndNodeDown(t *testing.T) {
	s := newSim(t, 4)
	svc := global("mon")
	svc.Spec.Update = api.UpdateConfig{Parallelism: 1, Order: OrderStartFirst}
	s.services = []api.Service{svc}
	s.run(3)
	s.updateSpec("mon", nil)
	for i := 0; i < 20; i++ {
		s.step()
		if u := s.unfinished("mon"); u > 5 {
			t.Fatalf("step %d: %d unfinished, 4 nodes + parallelism 1", i, u)
		}
	}
	if v := versions(s, "mon"); !reflect.DeepEqual(v, map[uint64]int{2: 4}) {
		t.Fatalf("versions %v", v)
	}
	// A global task is not moved when its node goes down: it waits,
	// unknown, and runs on when the node returns (it may only have been
	// cut off).
	s.cut["n3"] = true
	s.now = s.now.Add(time.Minute)
	s.agent()
	r := s.reconcile()
	if len(r.NodesDown) != 1 || len(r.Create) != 0 {
		t.Fatalf("down %d, created %d", len(r.NodesDown), len(r.Create))
	}
	delete(s.cut, "n3")
	s.node("n3").Status.State = api.NodeReady
	s.node("n3").Status.Heartbeat = s.now
	s.run(3)
	if got := nodesOf(s.running("mon")); !reflect.DeepEqual(got, []string{"n1", "n2", "n3", "n4"}) {
		t.Fatalf("running on %v", got)
	}
	if s.unfinished("mon") != 4 {
		t.Fatalf("%d unfinished, want 4 (no duplicate on n3)", s.unfinished("mon"))
	}
}
