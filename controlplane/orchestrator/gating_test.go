package orchestrator

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// checked is a service whose tasks have a health check: 2 s start period,
// 1 s interval, 3 retries, so the default update monitor is 5 s.
func checked(id string, n uint64, strategy api.UpdateStrategy, action string) api.Service {
	svc := replicated(id, n)
	svc.Spec.Version = "v1"
	svc.Spec.Task.Health = &api.HealthCheck{Kind: api.HealthTCP, Port: 80, Interval: api.Duration(time.Second),
		Retries: 3, StartPeriod: api.Duration(2 * time.Second)}
	svc.Spec.Update = api.UpdateConfig{Strategy: strategy, Parallelism: 1, FailureAction: action}
	return svc
}

// TestHealthGating runs every strategy × failure action × timing of the new
// version's health through the sim: the new version fails outright, its
// check fails its retries, it never passes within the monitor window, or it
// passes late but within the window (which is not a failure).
func TestHealthGating(t *testing.T) {
	type timing struct {
		name string
		// fail and health play the new version's agent; the time is the
		// sim's clock when the task started running (its status stamp).
		fail   func(*api.Task) bool
		health func(t *api.Task, now time.Time) api.HealthState
		failed bool   // the new version counts as failed
		reason string // in the paused state's message
	}
	isNew := func(t *api.Task) bool { return t.Version == "v2" }
	timings := []timing{
		{name: "exits", fail: isNew, failed: true, reason: "failed: exit 1"},
		{name: "unhealthy after its retries", failed: true, reason: "unhealthy",
			health: func(t *api.Task, now time.Time) api.HealthState {
				if isNew(t) {
					return api.HealthUnhealthy
				}
				return api.HealthHealthy
			}},
		{name: "never healthy within the monitor", failed: true, reason: "not healthy within the update monitor (5s)",
			health: func(t *api.Task, now time.Time) api.HealthState {
				if isNew(t) {
					return api.HealthStarting
				}
				return api.HealthHealthy
			}},
		{name: "healthy late but within the monitor", failed: false,
			health: func(t *api.Task, now time.Time) api.HealthState {
				if isNew(t) && now.Sub(t.Meta.CreatedAt) < 4*time.Second {
					return api.HealthStarting
				}
				return api.HealthHealthy
			}},
	}
	for _, strategy := range []api.UpdateStrategy{api.StrategyRolling, api.StrategyCanary, api.StrategyBlueGreen} {
		for _, action := range []string{FailurePause, FailureRollback, FailureContinue} {
			for _, tm := range timings {
				t.Run(fmt.Sprintf("%s/%s/%s", strategy, action, tm.name), func(t *testing.T) {
					s := newSim(t, 3)
					s.services = []api.Service{checked("web", 4, strategy, action)}
					s.run(3)
					s.updateSpec("web", func(sp *api.ServiceSpec) { sp.Version = "v2" })
					s.fail = tm.fail
					if tm.health != nil {
						s.health = func(t *api.Task) api.HealthState { return tm.health(t, s.now) }
					}
					s.run(40)
					svc := s.service("web")
					u := svc.Update
					oldReady := 0
					for _, x := range s.running("web") {
						if x.Version == "v1" && ready(&x) {
							oldReady++
						}
					}
					switch {
					case !tm.failed && strategy == api.StrategyRolling:
						if u.State != api.UpdateCompleted || !svc.Status.Converged {
							t.Fatalf("a new version that passed in time: %+v %+v", u, svc.Status)
						}
					case !tm.failed:
						if u.State != api.UpdateAwaitingPromote || !svc.Status.Converged {
							t.Fatalf("a new version that passed in time: %+v %+v", u, svc.Status)
						}
					case action == FailurePause:
						if u.State != api.UpdatePaused || !strings.Contains(u.Message, tm.reason) || !strings.HasPrefix(u.Message, "update paused: task ") {
							t.Fatalf("want paused with %q: %+v", tm.reason, u)
						}
						// The previous version keeps serving: at most the
						// one slot of the first batch lost its old task.
						if oldReady < 3 {
							t.Fatalf("%d old tasks ready while paused", oldReady)
						}
						if svc.Status.Converged {
							t.Fatal("a paused rollout is not converged")
						}
					case action == FailureRollback:
						if u.State != api.UpdateRolledBack || u.CompletedAt.IsZero() || !strings.Contains(u.Message, tm.reason) || svc.Spec.Version != "v1" {
							t.Fatalf("want rolled back with %q: %+v", tm.reason, u)
						}
						if oldReady != 4 || len(s.running("web")) != 4 || !svc.Status.Converged {
							t.Fatalf("after rollback %d old ready, %d running, status %+v", oldReady, len(s.running("web")), svc.Status)
						}
					case action == FailureContinue:
						if u.State == api.UpdatePaused || u.State == api.UpdateRolledBack || svc.Spec.Version != "v2" {
							t.Fatalf("continue stopped the rollout: %+v", u)
						}
					}
				})
			}
		}
	}
}

// TestHealthGatingRatio: failures up to MaxFailureRatio of the slots do not
// stop the rollout, one more does.
func TestHealthGatingRatio(t *testing.T) {
	for _, tc := range []struct {
		ratio  float64
		bad    int // slots whose new task is unhealthy
		paused bool
	}{
		{0, 1, true}, {0.25, 1, false}, {0.25, 2, true}, {0.5, 2, false},
	} {
		t.Run(fmt.Sprintf("ratio %g, %d bad", tc.ratio, tc.bad), func(t *testing.T) {
			s := newSim(t, 3)
			svc := checked("web", 4, api.StrategyRolling, FailurePause)
			svc.Spec.Update.MaxFailureRatio = tc.ratio
			svc.Spec.Task.Health.KeepUnhealthy = true
			s.services = []api.Service{svc}
			s.run(3)
			s.updateSpec("web", func(sp *api.ServiceSpec) { sp.Version = "v2" })
			s.health = func(t *api.Task) api.HealthState {
				if t.Version == "v2" && int(t.Slot) <= tc.bad {
					return api.HealthUnhealthy
				}
				return api.HealthHealthy
			}
			s.run(30)
			u := s.service("web").Update
			if got := u.State == api.UpdatePaused; got != tc.paused {
				t.Fatalf("paused %v, want %v: %+v", got, tc.paused, u)
			}
			if !tc.paused && u.State != api.UpdateCompleted {
				t.Fatalf("under the ratio the rollout goes on: %+v", u)
			}
		})
	}
}

// TestMonitorWakesTheLeader: a task waiting for its check is judged exactly
// when its window ends, so the leader must be told when that is.
func TestMonitorWakesTheLeader(t *testing.T) {
	s := newSim(t, 1)
	svc := checked("web", 1, api.StrategyRolling, FailurePause)
	svc.Spec.Update.Monitor = api.Duration(20 * time.Second)
	s.services = []api.Service{svc}
	s.run(3)
	s.updateSpec("web", nil)
	s.health = func(t *api.Task) api.HealthState {
		if t.SpecVersion == 2 {
			return api.HealthStarting
		}
		return api.HealthHealthy
	}
	s.run(4)
	var started time.Time
	for _, x := range s.running("web") {
		if x.SpecVersion == 2 {
			started = x.Status.Timestamp
		}
	}
	if started.IsZero() {
		t.Fatal("the new task never ran")
	}
	// Heartbeats are what else wakes the leader; keep them far away.
	s.cluster.NodeDownGrace = api.Duration(time.Hour)
	r := s.reconcile()
	if want := started.Add(20 * time.Second); !r.NextEval.Equal(want) {
		t.Fatalf("NextEval %v, want the end of the monitor window %v", r.NextEval, want)
	}
	s.now = started.Add(20*time.Second - time.Millisecond)
	s.agent()
	if s.reconcile(); s.service("web").Update.State != api.UpdateUpdating {
		t.Fatalf("judged before the window ended: %+v", s.service("web").Update)
	}
	// The window is over, but the node has not been heard from since: its
	// report may be on the way (or the node is gone), so no verdict yet.
	s.now = started.Add(20 * time.Second)
	if s.reconcile(); s.service("web").Update.State != api.UpdateUpdating {
		t.Fatalf("judged on a node silent since before the window ended: %+v", s.service("web").Update)
	}
	s.agent()
	if s.reconcile(); s.service("web").Update.State != api.UpdatePaused {
		t.Fatalf("not judged once the node reported after the window: %+v", s.service("web").Update)
	}
}
