package runtime

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/api"
)

// A broken wait is retried this often before the task counts as failed.
const (
	reattachTries = 20
	reattachDelay = 500 * time.Millisecond
)

// stopMargin is how long past its grace stopping a task may take before the
// runner gives up waiting for the controller.
const stopMargin = 30 * time.Second

// runner is the goroutine that owns one task on this node.
type runner struct {
	w    *Worker
	task api.Task
	ctl  Controller

	mu       sync.Mutex
	desired  api.TaskState
	stopCh   chan struct{} // closed once desired becomes terminal
	history  RestartHistory
	restarts uint64
}

func newRunner(w *Worker, t api.Task, ctl Controller) *runner {
	return &runner{w: w, task: t, ctl: ctl, desired: t.DesiredState, stopCh: make(chan struct{})}
}

// setDesired records a new desired state; desired states only move forward.
func (r *runner) setDesired(s api.TaskState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.desired.Before(s) {
		return
	}
	wasTerminal := r.desired.Terminal()
	r.desired = s
	if s.Terminal() && !wasTerminal {
		close(r.stopCh)
	}
}

func (r *runner) desiredState() api.TaskState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.desired
}

func (r *runner) stopping() bool {
	select {
	case <-r.stopCh:
		return true
	default:
		return false
	}
}

func (r *runner) run() {
	ctx := r.w.ctx
	id := r.task.ID
	log := r.w.log.With(zap.String("task_id", id), zap.String("service_id", r.task.ServiceID))
	restart := false
	for {
		if r.stopping() {
			r.stop()
			return
		}
		actx, acancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-r.stopCh:
				acancel()
			case <-actx.Done():
			}
		}()
		exit, err := r.attempt(actx, restart)
		acancel()
		restart = false
		if ctx.Err() != nil {
			return // the Worker is closing: leave the container as it is
		}
		if r.stopping() {
			r.stop()
			return
		}
		if err != nil {
			log.Warn("task attempt failed", zap.Error(err))
		}
		now := r.w.o.Clock.Now()
		d := NextRestart(r.task.Spec.Restart, r.history, exit, now)
		if !d.Restart {
			// The node gives up on this task: now, and only now, it is
			// terminal, and the orchestrator may replace it.
			state := api.TaskComplete
			if err != nil || exit.Failed() {
				state = api.TaskFailed
			}
			r.w.report(id, false, func(st *api.TaskStatus) {
				st.State, st.PID, st.Health = state, 0, api.HealthNone
				if st.Message == "" {
					st.Message = d.Reason
				} else {
					st.Message += "; " + d.Reason
				}
			})
			select {
			case <-r.stopCh:
				r.stop()
			case <-ctx.Done():
			}
			return
		}
		switch sleep(ctx, r.w.o.Clock, d.Delay, r.stopCh) {
		case errStopped:
			r.stop()
			return
		case nil:
		default:
			return
		}
		r.history.Restarts = append(r.history.Restarts, r.w.o.Clock.Now())
		r.restarts++
		restart = true
		log.Info("restarting task", zap.Uint64("restarts", r.restarts), zap.Duration("delay", d.Delay))
	}
}

// attempt runs the task once: prepare, start, wait. It reports every step.
func (r *runner) attempt(ctx context.Context, restart bool) (ExitStatus, error) {
	id := r.task.ID
	restarts := r.restarts
	if restart {
		// Restarted in place: the task keeps its (non-terminal) state, and
		// the restart shows in Restarts, the message and a new PID.
		r.w.report(id, false, func(st *api.TaskStatus) {
			st.Restarts, st.Message, st.Err = restarts, "restarting", ""
		})
	} else {
		r.w.report(id, false, func(st *api.TaskStatus) {
			*st = api.TaskStatus{State: api.TaskPreparing, Restarts: restarts, ContainerID: st.ContainerID}
		})
	}
	// A failed step is not reported as a terminal state here: run decides
	// whether the restart policy retries it. Only a task the node gives up
	// on is reported failed, so the orchestrator never replaces a task that
	// is about to be restarted in place.
	fail := func(step string, err error) (ExitStatus, error) {
		err = fmt.Errorf("%s: %w", step, err)
		if ctx.Err() == nil {
			r.w.report(id, false, func(st *api.TaskStatus) {
				st.Err, st.PID, st.Pull = err.Error(), 0, api.PullProgress{}
			})
		}
		return ExitStatus{Code: -1, ExitedAt: r.w.o.Clock.Now()}, err
	}
	if err := r.ctl.Prepare(ctx); err != nil {
		return fail("prepare", err)
	}
	r.w.report(id, false, func(st *api.TaskStatus) {
		forward(st, api.TaskStarting)
		st.Pull = api.PullProgress{} // pulled: no longer news
	})
	if err := r.ctl.Start(ctx); err != nil {
		return fail("start", err)
	}
	var info Info
	if in, ok := r.ctl.(Inspector); ok {
		info = in.Info()
	}
	if info.Restarts > r.restarts {
		r.restarts = info.Restarts // recorded by the executor before this Worker existed
	}
	restarts = r.restarts
	msg := "started"
	if info.Adopted {
		msg = "adopted running container"
	}
	health := api.HealthNone
	if r.task.Spec.Health != nil {
		health = adoptedHealth(r.task, info)
	}
	r.w.report(id, false, func(st *api.TaskStatus) {
		forward(st, api.TaskRunning)
		st.PID, st.ContainerID, st.Message, st.Err = info.PID, info.ContainerID, msg, ""
		st.Restarts = restarts
		st.Addr = ""
		if info.Addr.IsValid() {
			st.Addr = info.Addr.String()
		}
		st.Health = health
	})
	stopHealth := r.startHealth(ctx, info, health)
	exit, err := r.ctl.Wait(ctx)
	for tries := 0; err != nil && ctx.Err() == nil && tries < reattachTries; tries++ {
		// Waiting broke without an exit (containerd restarted, say): the
		// process may well still run. Start adopts it if so.
		r.w.log.Info("reattaching to task", zap.String("task_id", id), zap.Error(err))
		if sleep(ctx, r.w.o.Clock, reattachDelay, nil) != nil {
			break
		}
		if serr := r.ctl.Start(ctx); serr != nil {
			continue
		}
		if in, ok := r.ctl.(Inspector); ok {
			now := in.Info()
			if !now.Adopted || now.PID != info.PID {
				// It had died and Start ran it again: that was a restart.
				info = now
				r.restarts++
				restarts = r.restarts
				r.w.report(id, false, func(st *api.TaskStatus) {
					st.PID, st.Restarts, st.Message = now.PID, restarts, "process was gone after reattaching; started again"
					if now.Addr.IsValid() {
						st.Addr = now.Addr.String()
					}
				})
			}
		}
		exit, err = r.ctl.Wait(ctx)
	}
	stopHealth()
	if ctx.Err() != nil {
		return exit, ctx.Err()
	}
	if err != nil {
		return fail("wait", err)
	}
	r.w.report(id, false, func(st *api.TaskStatus) {
		st.ExitCode, st.PID = exit.Code, 0
		st.Message = exitMessage(exit)
		// No process, no service: keep it out of every node's backends
		// until the restarted process runs (and passes its check, if it
		// has one) — also without a check, or the dead address would stay
		// in the tables for the whole restart delay.
		st.Health = api.HealthUnhealthy
	})
	return exit, nil
}

// startHealth probes the task until the returned function is called; that
// function waits for the prober so no health report follows it.
//
// An unhealthy task is reported, not restarted: the dataplane stops sending
// it new connections, and the managers' orchestrator (which sees the whole
// service) decides whether to replace it. Restarting here as well would race
// that decision and hide a failing health check behind a restart loop.
func (r *runner) startHealth(ctx context.Context, info Info, from api.HealthState) func() {
	hc := r.task.Spec.Health
	if hc == nil {
		return func() {}
	}
	ex, _ := r.ctl.(Execer)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tr := NewHealthTracker(*hc, r.w.o.Clock.Now())
		tr.Resume(from)
		last := tr.State()
		interval, _ := HealthIntervals(*hc)
		for {
			// The next probe is due an interval after the last one ended,
			// as docker's: a slow probe never queues another behind it.
			if sleep(ctx, r.w.o.Clock, interval, nil) != nil {
				return
			}
			began := r.w.o.Clock.Now()
			err := Probe(ctx, r.w.o.Clock, *hc, info.Addr, ex)
			if ctx.Err() != nil {
				return
			}
			r.w.log.Debug("health probe", zap.String("task_id", r.task.ID), zap.Duration("took", r.w.o.Clock.Now().Sub(began)), zap.Error(err))
			s := tr.Observe(r.w.o.Clock.Now(), err == nil)
			if s == last {
				continue
			}
			last = s
			r.w.report(r.task.ID, false, func(st *api.TaskStatus) {
				st.Health = s
				if err != nil {
					st.Message = "health check: " + err.Error()
				} else {
					st.Message = "health check passed"
				}
			})
		}
	}()
	return func() { cancel(); <-done }
}

// stop shuts the task down and removes its container, then reports shutdown
// (unless the task already ended) and forgets it if it is not wanted at all.
func (r *runner) stop() {
	id := r.task.ID
	// The controller kills the task after its grace; the margin bounds a
	// containerd that does not answer at all.
	ctx, cancel := withTimeout(context.Background(), r.w.o.Clock, StopGrace(r.task.Spec.Container)+stopMargin)
	defer cancel()
	var errs []string
	if err := r.ctl.Shutdown(ctx); err != nil {
		errs = append(errs, err.Error())
	}
	if err := r.ctl.Remove(ctx); err != nil {
		errs = append(errs, err.Error())
	}
	desired := r.desiredState()
	r.w.report(id, false, func(st *api.TaskStatus) {
		if !st.State.Terminal() {
			st.State = api.TaskShutdown
		}
		st.PID, st.Health = 0, api.HealthNone
		st.Message = "stopped and removed"
		if len(errs) > 0 {
			st.Err = fmt.Sprint(errs)
		}
	})
	r.w.forget(id, r, desired == api.TaskShutdown)
}

// forward moves a status to state to unless it is already there or past it
// (a task restarted in place stays running while its process restarts).
func forward(st *api.TaskStatus, to api.TaskState) {
	if st.State.Before(to) {
		st.State = to
	}
}

func exitMessage(exit ExitStatus) string {
	m := fmt.Sprintf("exited with code %d", exit.Code)
	if exit.OOMKilled {
		m += " (out of memory)"
	}
	return m
}

// adoptedHealth is the health a task with a check starts from: "starting"
// for a new process, but for a process adopted from an earlier agent the
// health its assignment last recorded for that very process. Starting over
// would take every healthy backend of the node out of its services (VIPs,
// published ports) for a probe interval each time the daemon restarts.
func adoptedHealth(t api.Task, info Info) api.HealthState {
	prev := t.Status
	if info.Adopted && prev.State == api.TaskRunning && prev.PID != 0 && prev.PID == info.PID &&
		(prev.Health == api.HealthHealthy || prev.Health == api.HealthUnhealthy) {
		return prev.Health
	}
	return api.HealthStarting
}
