package client

import (
	"slices"
	"testing"

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

func TestProgressOf(t *testing.T) {
	replicated := func(n uint64, update api.UpdateState) api.Service {
		s := api.Service{ID: "svc-1", SpecVersion: 2, Spec: api.ServiceSpec{Name: "web", Mode: api.ModeReplicated, Replicas: n}}
		if update != "" {
			s.Update = &api.UpdateStatus{State: update}
		}
		return s
	}
	global := api.Service{ID: "svc-1", SpecVersion: 2, Spec: api.ServiceSpec{Name: "web", Mode: api.ModeGlobal}}
	run, pend, shut := api.TaskRunning, api.TaskPending, api.TaskShutdown

	for _, tc := range []struct {
		name          string
		svc           api.Service
		tasks         []api.Task
		done          bool
		running, want int
		pending       []string
		failing       []string
		str, problem  string
	}{
		{
			name:  "all replicas of the current spec run",
			svc:   replicated(2, ""),
			tasks: []api.Task{task(1, 2, run, run), task(2, 2, run, run)},
			done:  true, running: 2, want: 2,
			str: "web: 2/2 running, converged",
		},
		{
			name:    "one replica cannot be placed",
			svc:     replicated(2, ""),
			tasks:   []api.Task{task(1, 2, run, run), task(2, 2, run, pend, withStatus("0/3 nodes: 3 insufficient memory", ""))},
			running: 1, want: 2,
			pending: []string{"web.2: 0/3 nodes: 3 insufficient memory"},
			str:     "web: 1/2 running… pending: web.2: 0/3 nodes: 3 insufficient memory",
			problem: "web.2: 0/3 nodes: 3 insufficient memory",
		},
		{
			name:    "a task of the old spec still runs",
			svc:     replicated(2, ""),
			tasks:   []api.Task{task(1, 2, run, run), task(2, 1, run, run)},
			running: 2, want: 2,
			str: "web: 2/2 running…", problem: "2/2 running",
		},
		{
			name:    "a health check has not passed yet",
			svc:     replicated(1, ""),
			tasks:   []api.Task{task(1, 2, run, run, withHealth(api.HealthStarting))},
			running: 1, want: 1,
			str: "web: 1/1 running…", problem: "1/1 running",
		},
		{
			name:  "the health check passes",
			svc:   replicated(1, ""),
			tasks: []api.Task{task(1, 2, run, run, withHealth(api.HealthHealthy))},
			done:  true, running: 1, want: 1,
			str: "web: 1/1 running, converged",
		},
		{
			name: "failing and unhealthy tasks are named",
			svc:  replicated(2, ""),
			tasks: []api.Task{
				task(1, 2, run, api.TaskFailed, withStatus("", "exit status 1")),
				task(2, 2, run, run, withHealth(api.HealthUnhealthy)),
			},
			running: 1, want: 2,
			failing: []string{"web.1: failed exit status 1", "web.2: unhealthy"},
			str:     "web: 1/2 running… failing: web.1: failed exit status 1",
			problem: "web.1: failed exit status 1; web.2: unhealthy",
		},
		{
			name:    "counts match but the rollout is still updating",
			svc:     replicated(1, api.UpdateUpdating),
			tasks:   []api.Task{task(1, 2, run, run)},
			running: 1, want: 1,
			str: "web: 1/1 running…", problem: "1/1 running",
		},
		{
			name:  "a completed rollout is done",
			svc:   replicated(1, api.UpdateCompleted),
			tasks: []api.Task{task(1, 2, run, run)},
			done:  true, running: 1, want: 1,
			str: "web: 1/1 running, converged",
		},
		{
			name: "stopped tasks and other services do not count",
			svc:  replicated(1, ""),
			tasks: []api.Task{
				task(1, 2, run, run),
				task(2, 2, shut, api.TaskFailed, withStatus("", "killed")),
				task(3, 2, run, run, func(t *api.Task) { t.ServiceID = "svc-2" }),
			},
			done: true, running: 1, want: 1,
			str: "web: 1/1 running, converged",
		},
		{
			name:  "blue/green: new version deployed beside the old",
			svc:   replicated(2, api.UpdateAwaitingPromote),
			tasks: []api.Task{task(1, 1, run, run), task(2, 1, run, run), task(3, 2, run, run), task(4, 2, run, run)},
			done:  true, running: 4, want: 2,
			str: "web: 4/2 running, new version deployed: run `warren service promote web` to finish",
		},
		{
			name:    "blue/green: a new task is not running yet",
			svc:     replicated(2, api.UpdateAwaitingPromote),
			tasks:   []api.Task{task(1, 1, run, run), task(2, 1, run, run), task(3, 2, run, run), task(4, 2, run, api.TaskStarting)},
			running: 3, want: 2,
			str: "web: 3/2 running…", problem: "3/2 running",
		},
		{
			name:    "blue/green: no task of the new version yet",
			svc:     replicated(1, api.UpdateAwaitingPromote),
			tasks:   []api.Task{task(1, 1, run, run)},
			running: 1, want: 1,
			str: "web: 1/1 running…", problem: "1/1 running",
		},
		{
			name: "global: one task per node that should run one",
			svc:  global,
			tasks: []api.Task{
				task(0, 2, run, run, func(t *api.Task) { t.NodeID = "node-aaaaaaaaaaaaaaaa" }),
				task(0, 2, run, pend, func(t *api.Task) { t.NodeID = "node-bbbbbbbbbbbbbbbb"; t.Status.Message = "pulling" }),
			},
			running: 1, want: 2,
			pending: []string{"web.node-bbbbbbb: pulling"},
			str:     "web: 1/2 running… pending: web.node-bbbbbbb: pulling",
			problem: "web.node-bbbbbbb: pulling",
		},
		{
			name:    "no tasks yet",
			svc:     replicated(3, ""),
			running: 0, want: 3,
			str: "web: 0/3 running…", problem: "0/3 running",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ProgressOf(tc.svc, tc.tasks)
			if p.Done != tc.done || p.Running != tc.running || p.Want != tc.want {
				t.Errorf("done=%v %d/%d, want done=%v %d/%d", p.Done, p.Running, p.Want, tc.done, tc.running, tc.want)
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
