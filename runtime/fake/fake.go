// Package fake is an in-memory runtime.Executor for tests of the Worker and
// of code that uses it, without containerd. Tests drive task exits with
// Exit and inspect what was called with Calls; Clock is the fake time the
// Worker (and so this executor's stop grace) runs on.
//
// It must not import containerd or anything kernel-facing.
package fake

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/runtime"
)

// Executor is a fake runtime.Executor. The zero value is not usable; use New.
type Executor struct {
	mu         sync.Mutex
	containers map[string]*container // by task ID
	calls      []string
	nextPID    int
	// FailPrepare makes Prepare fail for these task IDs.
	FailPrepare map[string]error
	// ExecResult is the exit code Exec returns per task (default 0); set it
	// before the Worker runs, or with SetExecResult while it does.
	ExecResult map[string]int
	// IgnoreStop makes these tasks' processes ignore their stop signal, so
	// Shutdown kills them when the stop grace ends on the Worker's clock.
	IgnoreStop map[string]bool
}

// SetExecResult sets the exit code health-check execs of taskID return.
func (e *Executor) SetExecResult(taskID string, code int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ExecResult[taskID] = code
}

type container struct {
	id      string
	running bool
	pid     int
	exited  chan runtime.ExitStatus
}

// New returns an empty fake executor.
func New() *Executor {
	return &Executor{containers: map[string]*container{}, nextPID: 100, FailPrepare: map[string]error{}, ExecResult: map[string]int{}, IgnoreStop: map[string]bool{}}
}

// AddRunning pretends a container for taskID is already running (adoption tests).
func (e *Executor) AddRunning(taskID string, pid int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.containers[taskID] = &container{id: "c-" + taskID, running: true, pid: pid, exited: make(chan runtime.ExitStatus, 1)}
}

// Exit makes a running task's process exit with code.
func (e *Executor) Exit(taskID string, code int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.containers[taskID]
	if !ok || !c.running {
		return fmt.Errorf("fake exit %s: not running", taskID)
	}
	c.running = false
	c.exited <- runtime.ExitStatus{Code: code}
	return nil
}

// Calls returns the operations performed so far, e.g. "start t1".
func (e *Executor) Calls() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.calls...)
}

// Running reports whether taskID's process runs, and its PID.
func (e *Executor) Running(taskID string) (bool, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.containers[taskID]
	if !ok {
		return false, 0
	}
	return c.running, c.pid
}

func (e *Executor) record(s string) { e.calls = append(e.calls, s) }

// Controller implements runtime.Executor.
func (e *Executor) Controller(t *api.Task, o runtime.ControllerOptions) (runtime.Controller, error) {
	clk := o.Clock
	if clk == nil {
		clk = runtime.SystemClock{}
	}
	return &controller{e: e, id: t.ID, clock: clk, grace: runtime.StopGrace(t.Spec.Container)}, nil
}

// List implements runtime.Executor.
func (e *Executor) List(context.Context) ([]runtime.Owned, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []runtime.Owned
	for id, c := range e.containers {
		out = append(out, runtime.Owned{ContainerID: c.id, TaskID: id, Running: c.running})
	}
	return out, nil
}

// RemoveContainer implements runtime.Executor.
func (e *Executor) RemoveContainer(_ context.Context, cid string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, c := range e.containers {
		if c.id == cid {
			if c.running {
				c.running = false
				c.exited <- runtime.ExitStatus{Code: 137}
			}
			delete(e.containers, id)
			e.record("remove-unknown " + id)
		}
	}
	return nil
}

type controller struct {
	e       *Executor
	id      string
	clock   runtime.Clock
	grace   time.Duration
	adopted bool
}

func (c *controller) Prepare(context.Context) error {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	if err := c.e.FailPrepare[c.id]; err != nil {
		c.e.record("prepare-fail " + c.id)
		return err
	}
	if _, ok := c.e.containers[c.id]; !ok {
		c.e.containers[c.id] = &container{id: "c-" + c.id, exited: make(chan runtime.ExitStatus, 1)}
		c.e.record("create " + c.id)
	}
	return nil
}

func (c *controller) Start(context.Context) error {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	ct, ok := c.e.containers[c.id]
	if !ok {
		return fmt.Errorf("start %s: %w", c.id, runtime.ErrNotFound)
	}
	if ct.running {
		c.adopted = true
		c.e.record("adopt " + c.id)
		return nil
	}
	c.adopted = false
	c.e.nextPID++
	ct.pid, ct.running = c.e.nextPID, true
	c.e.record("start " + c.id)
	return nil
}

func (c *controller) Wait(ctx context.Context) (runtime.ExitStatus, error) {
	c.e.mu.Lock()
	ct, ok := c.e.containers[c.id]
	c.e.mu.Unlock()
	if !ok {
		return runtime.ExitStatus{}, fmt.Errorf("wait %s: %w", c.id, runtime.ErrNotFound)
	}
	select {
	case s := <-ct.exited:
		return s, nil
	case <-ctx.Done():
		return runtime.ExitStatus{}, ctx.Err()
	}
}

// Shutdown stops the process as the containerd controller does: the stop
// signal, then, for a task in IgnoreStop, a kill once the grace has passed
// on the clock ("kill <id>" in Calls).
func (c *controller) Shutdown(ctx context.Context) error {
	c.e.mu.Lock()
	c.e.record("shutdown " + c.id)
	ct, ok := c.e.containers[c.id]
	if !ok || !ct.running {
		c.e.mu.Unlock()
		return nil
	}
	if !c.e.IgnoreStop[c.id] {
		ct.running = false
		c.e.mu.Unlock()
		return nil
	}
	c.e.mu.Unlock()
	t := c.clock.NewTimer(c.grace)
	defer t.Stop()
	select {
	case <-t.C():
	case <-ctx.Done():
		return ctx.Err()
	}
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	c.e.record("kill " + c.id)
	ct.running = false
	return nil
}

func (c *controller) Remove(context.Context) error {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	c.e.record("remove " + c.id)
	delete(c.e.containers, c.id)
	return nil
}

func (c *controller) Info() runtime.Info {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	in := runtime.Info{Adopted: c.adopted, Addr: netip.MustParseAddr("10.199.0.2")}
	if ct, ok := c.e.containers[c.id]; ok {
		in.ContainerID, in.PID = ct.id, ct.pid
	}
	return in
}

func (c *controller) Exec(context.Context, []string) (int, error) {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	return c.e.ExecResult[c.id], nil
}

func (c *controller) Stats(context.Context) (runtime.Stats, error) {
	return runtime.Stats{CPUSeconds: 1.5, MemoryBytes: 4096}, nil
}
