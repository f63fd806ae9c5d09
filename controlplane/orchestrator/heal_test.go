package orchestrator

import (
	"strings"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
)

// TestUnhealthyTaskReplaced: a task whose check failed its retries is
// stopped with the reason and its slot gets a new task, as in Swarm; a
// service that opts out keeps it.
func TestUnhealthyTaskReplaced(t *testing.T) {
	for _, keep := range []bool{false, true} {
		name := "replaced"
		if keep {
			name = "kept"
		}
		t.Run(name, func(t *testing.T) {
			s := newSim(t, 2)
			svc := checked("web", 2, api.StrategyRolling, FailurePause)
			svc.Spec.Task.Health.KeepUnhealthy = keep
			s.services = []api.Service{svc}
			s.run(3)
			var sick string
			for _, x := range s.running("web") {
				if x.Slot == 2 {
					sick = x.ID
				}
			}
			s.health = func(t *api.Task) api.HealthState {
				if t.ID == sick {
					return api.HealthUnhealthy
				}
				return api.HealthHealthy
			}
			s.run(5)
			var stopped *api.Task
			for i := range s.tasks {
				if s.tasks[i].ID == sick {
					stopped = &s.tasks[i]
				}
			}
			if keep {
				if stopped.DesiredState != api.TaskRunning || len(s.running("web")) != 2 {
					t.Fatalf("opted out, yet %+v", stopped)
				}
				return
			}
			if stopped.DesiredState != api.TaskShutdown || !strings.Contains(stopped.StopReason, "unhealthy") {
				t.Fatalf("unhealthy task %+v", stopped)
			}
			run := s.running("web")
			if len(run) != 2 || run[1].ID == sick || run[1].Slot != 2 || !ready(&run[1]) {
				t.Fatalf("slot 2 not healed: %+v", run)
			}
			if st := s.service("web").Status; !st.Converged || st.Ready != 2 {
				t.Fatalf("status %+v", st)
			}
		})
	}
}

// TestStatusAfterRollbackAndScale: the converged flag the CLI waits on is
// set after a rollback (whose tasks keep their old spec version) and after
// a scale that follows it; a scale down is converged only once the removed
// tasks stopped.
func TestStatusAfterRollbackAndScale(t *testing.T) {
	s := newSim(t, 2)
	svc := replicated("web", 3)
	svc.Spec.Update = api.UpdateConfig{Strategy: api.StrategyRolling, Parallelism: 1}
	s.services = []api.Service{svc}
	s.run(3)
	s.updateSpec("web", nil)
	s.fail = func(t *api.Task) bool { return t.SpecVersion == 2 }
	s.run(4)
	if u := s.service("web").Update; u.State != api.UpdatePaused {
		t.Fatalf("want a stalled update, got %+v", u)
	}
	s.fail = nil
	rb, err := Rollback(*s.service("web"), s.now, "operator")
	if err != nil {
		t.Fatal(err)
	}
	rb.Generation++
	*s.service("web") = rb
	s.run(4)
	if st := s.service("web").Status; !st.Converged || st.ObservedGeneration != rb.Generation || st.Ready != 3 {
		t.Fatalf("after rollback %+v", st)
	}
	scale := func(n uint64) {
		svc := s.service("web")
		svc.Spec.Replicas = n
		svc.Generation++
	}
	scale(5)
	s.run(3)
	if st := s.service("web").Status; !st.Converged || st.Ready != 5 || st.ObservedGeneration != s.service("web").Generation {
		t.Fatalf("after scale up %+v", st)
	}
	scale(2)
	// Stopping takes a while on the node.
	s.hold = func(t *api.Task) bool { return t.DesiredState == api.TaskRemove }
	s.run(3)
	if st := s.service("web").Status; st.Converged || st.Desired != 2 {
		t.Fatalf("converged while removed tasks still run: %+v", st)
	}
	s.hold = nil
	s.run(2)
	if st := s.service("web").Status; !st.Converged || st.Ready != 2 {
		t.Fatalf("after scale down %+v", st)
	}
}

// TestRestartingTaskNotHealed: a task whose process exited reports
// unhealthy with no PID while its node restarts it in place (so it leaves
// the service tables); that is the restart policy's business, not a failed
// health check, and the orchestrator leaves it alone.
func TestRestartingTaskNotHealed(t *testing.T) {
	r := &reconciler{}
	svc := checked("web", 1, api.StrategyRolling, FailurePause)
	for _, c := range []struct {
		pid      int
		replaced bool
	}{{pid: 0, replaced: false}, {pid: 4242, replaced: true}} {
		tk := &api.Task{ID: "t1", ServiceID: "web", Spec: svc.Spec.Task, DesiredState: api.TaskRunning,
			Status: api.TaskStatus{State: api.TaskRunning, PID: c.pid, Health: api.HealthUnhealthy}}
		r.dirty = map[string]bool{}
		r.heal(&svc, []*api.Task{tk})
		if got := tk.DesiredState == api.TaskShutdown; got != c.replaced {
			t.Errorf("pid %d: replaced = %v, want %v", c.pid, got, c.replaced)
		}
	}
}
