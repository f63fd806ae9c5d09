package client

import (
	"slices"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// task builds a task of service "svc-1" (web) at spec version v.
func task(slot uint64, v uint64, desired, state api.TaskState, mod ...func(*api.Task)) api.Task {
	t := api.Task{ID: "t", ServiceID: "svc-1", ServiceName: "web", Slot: slot, SpecVersion: v, DesiredState: desired, Status: api.TaskStatus{State: state}}
	for _, m := range mod {
		m(&t)
	}
	return t
}

func withHealth(h api.HealthState) func(*api.Task) {
	return func(t *api.Task) { t.Spec.Health = &api.HealthCheck{Kind: api.HealthTCP}; t.Status.Health = h }
}

func withStatus(msg, err string) func(*api.Task) {
	return func(t *api.Task) { t.Status.Message, t.Status.Err = msg, err }
}

func weight(w uint32) *uint32 { return &w }

func TestProgressOf(t *testing.T) {
	// svc is web at generation gen with the orchestrator's status as given.
	svc := func(gen uint64, update api.UpdateState, st *api.ServiceStatus) api.Service {
		s := api.Service{ID: "svc-1", SpecVersion: 2, Generation: gen, Spec: api.ServiceSpec{Name: "web", Mode: api.ModeReplicated, Replicas: 2}, Status: st}
		if update != "" {
			s.Update = &api.UpdateStatus{State: update, Message: "msg"}
		}
		return s
	}
	status := func(observed uint64, ready, desired int, converged bool, vs ...api.VersionStatus) *api.ServiceStatus {
		return &api.ServiceStatus{ObservedGeneration: observed, Ready: ready, Desired: desired, Converged: converged, Versions: vs}
	}
	run, pend := api.TaskRunning, api.TaskPending
	two := []api.Task{task(1, 2, run, run), task(2, 2, run, run)}

	for _, tc := range []struct {
		name         string
		svc          api.Service
		generation   uint64 // what the CLI wrote
		strategy     api.UpdateStrategy
		keepUntil    time.Time
		tasks        []api.Task
		done         bool
		stopped      string
		ready, want  int
		pending      []string
		failing      []string
		str, problem string
	}{
		{
			name: "converged as the orchestrator recorded it",
			svc:  svc(3, api.UpdateCompleted, status(3, 2, 2, true)), generation: 3, tasks: two,
			done: true, ready: 2, want: 2,
			str: "web: 2/2 ready, converged",
		},
		{
			// The CLI's own write is not observed yet: a converged status
			// from before it must not end the wait.
			name: "a status older than the write is not an answer",
			svc:  svc(4, api.UpdateCompleted, status(3, 2, 2, true)), generation: 4, tasks: two,
			ready: 2, want: 2,
			str: "web: 2/2 ready… waiting for the orchestrator", problem: "the orchestrator has not acted on the change yet",
		},
		{
			// A follower answered before it had the write: its service is
			// older than the generation the write returned.
			name: "a stale read is not an answer either",
			svc:  svc(3, "", status(3, 2, 2, true)), generation: 4, tasks: two,
			ready: 2, want: 2,
			str: "web: 2/2 ready… waiting for the orchestrator", problem: "the orchestrator has not acted on the change yet",
		},
		{
			// The bug of issue 11: after a rollback the tasks keep their
			// old spec version while the service's moved on. Scale (which
			// keeps the spec version) then hung as well.
			name: "after a rollback the old tasks are current",
			svc:  svc(5, api.UpdateRolledBack, status(5, 2, 2, true)), generation: 5,
			tasks: []api.Task{task(1, 1, run, run), task(2, 1, run, run)},
			done:  true, ready: 2, want: 2,
			str: "web: 2/2 ready, converged",
		},
		{
			name: "a rollback still stopping the new tasks",
			svc:  svc(5, api.UpdateRolledBack, status(5, 2, 2, false)), generation: 5,
			tasks: []api.Task{task(1, 1, run, run), task(2, 1, run, run), task(2, 2, api.TaskShutdown, run)},
			ready: 2, want: 2,
			str: "web: 2/2 ready…", problem: "2/2 ready",
		},
		{
			name:  "scale down waits for the orchestrator to see the tasks stop",
			svc:   svc(6, "", status(6, 2, 2, false)),
			tasks: []api.Task{task(1, 2, run, run), task(2, 2, run, run), task(3, 2, api.TaskRemove, run)},
			ready: 2, want: 2,
			str: "web: 2/2 ready…", problem: "2/2 ready",
		},
		{
			name: "a paused rollout stops the wait with its reason",
			svc:  svc(7, api.UpdatePaused, status(7, 1, 2, false)), generation: 7,
			tasks:   []api.Task{task(1, 1, run, run), task(2, 3, run, run, withHealth(api.HealthUnhealthy))},
			stopped: "msg", ready: 1, want: 2,
			failing: []string{"web.2: unhealthy"},
			str:     "web: 1/2 ready, msg", problem: "msg",
		},
		{
			name:  "one replica cannot be placed",
			svc:   svc(2, "", status(2, 1, 2, false)),
			tasks: []api.Task{task(1, 2, run, run), task(2, 2, run, pend, withStatus("0/3 nodes: 3 insufficient memory", ""))},
			ready: 1, want: 2,
			pending: []string{"web.2: 0/3 nodes: 3 insufficient memory"},
			str:     "web: 1/2 ready… pending: web.2: 0/3 nodes: 3 insufficient memory",
			problem: "web.2: 0/3 nodes: 3 insufficient memory",
		},
		{
			name: "failing and unhealthy tasks are named",
			svc:  svc(2, "", status(2, 0, 2, false)),
			tasks: []api.Task{
				task(1, 2, run, api.TaskFailed, withStatus("", "exit status 1")),
				task(2, 2, run, run, withHealth(api.HealthUnhealthy)),
			},
			ready: 0, want: 2,
			failing: []string{"web.1: failed exit status 1", "web.2: unhealthy"},
			str:     "web: 0/2 ready… failing: web.1: failed exit status 1",
			problem: "web.1: failed exit status 1; web.2: unhealthy",
		},
		{
			name: "canary deployed beside the old version",
			svc: svc(8, api.UpdateAwaitingPromote, status(8, 2, 2, true,
				api.VersionStatus{Version: "v2", Current: true, Ready: 1, Desired: 1, Weight: weight(10)},
				api.VersionStatus{Version: "v1", Ready: 2, Desired: 2, Weight: weight(90)})),
			generation: 8, strategy: api.StrategyCanary,
			done: true, ready: 2, want: 2,
			str: "web: 2/2 ready (v2: 1/1 canary 10%), new version deployed: run `warren service promote web` to finish",
		},
		{
			name: "blue/green in its keep window",
			svc: svc(9, api.UpdateCompleted, status(9, 2, 2, true,
				api.VersionStatus{Version: "green", Current: true, Ready: 2, Desired: 2, Weight: weight(100)},
				api.VersionStatus{Version: "blue", Ready: 2, Desired: 0, Weight: weight(0)})),
			generation: 9, strategy: api.StrategyBlueGreen, keepUntil: time.Unix(1, 0),
			done: true, ready: 2, want: 2,
			str: "web: 2/2 ready (green: 2/2 100%, blue: 2/0 0% kept), converged",
		},
		{
			name:  "no status yet: tasks are counted, ready ones only",
			svc:   svc(1, "", nil),
			tasks: []api.Task{task(1, 2, run, run), task(2, 2, run, run, withHealth(api.HealthStarting))},
			ready: 1, want: 2,
			str: "web: 1/2 ready… waiting for the orchestrator", problem: "the orchestrator has not acted on the change yet",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.svc.Spec.Update.Strategy = tc.strategy
			if tc.svc.Update != nil {
				tc.svc.Update.KeepUntil = tc.keepUntil
			}
			p := ProgressOf(tc.svc, tc.tasks, tc.generation)
			if p.Done != tc.done || p.Ready != tc.ready || p.Want != tc.want || p.Stopped != tc.stopped {
				t.Errorf("done=%v stopped=%q %d/%d, want done=%v stopped=%q %d/%d", p.Done, p.Stopped, p.Ready, p.Want, tc.done, tc.stopped, tc.ready, tc.want)
			}
			if !slices.Equal(p.Pending, tc.pending) || !slices.Equal(p.Failing, tc.failing) {
				t.Errorf("pending %q failing %q, want %q %q", p.Pending, p.Failing, tc.pending, tc.failing)
			}
			if p.String() != tc.str {
				t.Errorf("String() = %q, want %q", p.String(), tc.str)
			}
			if !tc.done && p.Problem() != tc.problem {
				t.Errorf("Problem() = %q, want %q", p.Problem(), tc.problem)
			}
		})
	}
}
