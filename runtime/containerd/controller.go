package containerd

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/runtime"
)

// controller runs one task; container ID = task ID.
type controller struct {
	e    *Executor
	task api.Task
	o    runtime.ControllerOptions

	mu     sync.Mutex
	ctr    client.Container
	ctask  client.Task
	exitC  <-chan client.ExitStatus
	cancel context.CancelFunc // ends the Wait subscription of ctask
	info   runtime.Info
	execN  int
}

func newController(e *Executor, t api.Task, o runtime.ControllerOptions) *controller {
	return &controller{e: e, task: t, o: o, info: runtime.Info{ContainerID: t.ID}}
}

func (c *controller) id() string { return c.task.ID }

func (c *controller) cgPath() string { return runtime.CgroupPath(c.e.o.CgroupParent, c.id()) }

// Prepare implements runtime.Controller: image present, container created.
func (c *controller) Prepare(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx = c.e.ns(ctx)
	// Every attempt, even for an existing container: after a node reboot
	// or a storage outage the volume must be mounted again before the task
	// process starts, or it would write to the empty mount point.
	if err := c.mountVolumes(ctx); err != nil {
		return err
	}
	if c.ctr != nil {
		return nil
	}
	ctr, err := c.e.client.LoadContainer(ctx, c.id())
	if err == nil {
		c.ctr = ctr
		return nil
	}
	if !errdefs.IsNotFound(err) {
		return fmt.Errorf("load container: %w", err)
	}
	img, err := c.e.ensureImage(ctx, c.task.Spec.Container.Image, c.task.Spec.Container.ImageDigest, c.e.pullAuth(c.task.ID), c.o.PullProgress)
	if err != nil {
		return err
	}
	ispec, err := img.Spec(ctx)
	if err != nil {
		return fmt.Errorf("image config %s: %w", img.Name(), err)
	}
	task := c.task
	specOpts := []oci.SpecOpts{
		func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			return runtime.ApplySpec(s, &task, ispec.Config, c.e.SpecOptions())
		},
	}
	if u := runtime.TaskUser(task.Spec.Container, ispec.Config); u != "" {
		if _, _, numeric := runtime.ParseUser(u); !numeric {
			// Names are looked up in the image's /etc/passwd.
			specOpts = append(specOpts, oci.WithUser(u))
		}
	}
	ctr, err = c.e.client.NewContainer(ctx, c.id(),
		client.WithImage(img),
		client.WithSnapshotter(c.e.o.Snapshotter),
		client.WithNewSnapshot(c.id(), img),
		client.WithRuntime(c.e.o.Runtime, nil),
		client.WithContainerLabels(runtime.LabelsFor(&task)),
		client.WithNewSpec(specOpts...),
	)
	if err != nil {
		return fmt.Errorf("create container: %w", err)
	}
	c.ctr = ctr
	return c.populateVolumes(ctx)
}

// Start implements runtime.Controller. A running task is adopted; an
// exited one is deleted and a new process started in the same container.
func (c *controller) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx = c.e.ns(ctx)
	if c.ctr == nil {
		return fmt.Errorf("start %s: container not prepared", c.id())
	}
	t, err := c.ctr.Task(ctx, nil)
	switch {
	case err == nil:
		st, err := t.Status(ctx)
		if err != nil {
			return fmt.Errorf("task status: %w", err)
		}
		if st.Status == client.Running || st.Status == client.Paused {
			return c.adopt(ctx, t)
		}
		if err := c.deleteTask(ctx, t); err != nil {
			return err
		}
		if err := c.newTask(ctx); err != nil {
			return err
		}
		// A process ran here before: count the restart in the container
		// so it survives the agent.
		labels, err := c.ctr.Labels(ctx)
		if err != nil {
			return fmt.Errorf("read labels: %w", err)
		}
		n, _ := strconv.ParseUint(labels[runtime.LabelRestarts], 10, 64)
		n++
		if _, err := c.ctr.SetLabels(ctx, map[string]string{runtime.LabelRestarts: strconv.FormatUint(n, 10)}); err != nil {
			return fmt.Errorf("record restart: %w", err)
		}
		c.info.Restarts = n
		return nil
	case !errdefs.IsNotFound(err):
		return fmt.Errorf("load task: %w", err)
	}
	return c.newTask(ctx)
}

func (c *controller) adopt(ctx context.Context, t client.Task) error {
	if c.ctask != t || c.exitC == nil {
		if err := c.subscribe(t); err != nil {
			return err
		}
	}
	labels, _ := c.ctr.Labels(ctx)
	n, _ := strconv.ParseUint(labels[runtime.LabelRestarts], 10, 64)
	c.info = runtime.Info{ContainerID: c.id(), PID: int(t.Pid()), Addr: parseAddr(labels[runtime.LabelAddr]), Adopted: true, Restarts: n}
	return nil
}

// subscribe starts waiting for t's exit with a context that outlives any
// caller: the subscription must exist before Start so no exit is missed.
func (c *controller) subscribe(t client.Task) error {
	if c.cancel != nil {
		c.cancel()
	}
	wctx, cancel := context.WithCancel(c.e.ns(context.Background()))
	ch, err := t.Wait(wctx)
	if err != nil {
		cancel()
		return fmt.Errorf("wait task: %w", err)
	}
	c.ctask, c.exitC, c.cancel = t, ch, cancel
	return nil
}

func (c *controller) newTask(ctx context.Context) (err error) {
	logIO := cio.LogFile(c.o.LogPath)
	switch {
	case c.o.RawLogPath != "":
		// The node log path: the shim appends to a file the Worker
		// collects; no process per task.
		logIO = cio.LogFile(c.o.RawLogPath)
	case c.e.o.LoggerBinary != "":
		logIO = cio.BinaryIO(c.e.o.LoggerBinary, loggerArgs(c.o.LogPath, c.o.LogMaxBytes, c.o.LogMaxFiles))
	}
	t, err := c.ctr.NewTask(ctx, logIO)
	if err != nil {
		return fmt.Errorf("new task: %w", err)
	}
	defer func() {
		if err != nil {
			_, _ = t.Delete(context.WithoutCancel(ctx), client.WithProcessKill)
			if c.e.o.Network != nil {
				_ = c.e.o.Network.Detach(context.WithoutCancel(ctx), c.id(), "")
			}
		}
	}()
	pid := int(t.Pid())
	moved, err := c.e.cg.ensureV2(pid, c.cgPath())
	if err != nil {
		return fmt.Errorf("cgroup v2: %w", err)
	}
	if moved {
		c.e.log.Debug("moved task into its v2 cgroup", zap.String("task_id", c.id()), zap.Int("pid", pid))
	}
	info := runtime.Info{ContainerID: c.id(), PID: pid}
	if c.e.o.Network != nil {
		addr, err := c.e.o.Network.Attach(ctx, c.id(), fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			return fmt.Errorf("network attach: %w", err)
		}
		info.Addr = addr
		if _, err := c.ctr.SetLabels(ctx, map[string]string{runtime.LabelAddr: addr.String()}); err != nil {
			return fmt.Errorf("record address: %w", err)
		}
	}
	if err := c.subscribe(t); err != nil {
		return err
	}
	if err := t.Start(ctx); err != nil {
		return fmt.Errorf("start task: %w", err)
	}
	c.info = info
	return nil
}

func (c *controller) deleteTask(ctx context.Context, t client.Task) error {
	if _, err := t.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete task: %w", err)
	}
	if c.cancel != nil {
		c.cancel()
		c.cancel = nil
	}
	c.ctask, c.exitC = nil, nil
	if c.e.o.Network != nil {
		if err := c.e.o.Network.Detach(ctx, c.id(), ""); err != nil {
			c.e.log.Warn("network detach", zap.String("task_id", c.id()), zap.Error(err))
		}
	}
	return nil
}

// Wait implements runtime.Controller.
func (c *controller) Wait(ctx context.Context) (runtime.ExitStatus, error) {
	c.mu.Lock()
	ch := c.exitC
	c.mu.Unlock()
	if ch == nil {
		return runtime.ExitStatus{}, fmt.Errorf("wait %s: %w", c.id(), errNoTask)
	}
	select {
	case <-ctx.Done():
		return runtime.ExitStatus{}, ctx.Err()
	case es, ok := <-ch:
		if !ok {
			return runtime.ExitStatus{}, fmt.Errorf("wait %s: subscription closed", c.id())
		}
		code, at, err := es.Result()
		if err != nil {
			return runtime.ExitStatus{}, fmt.Errorf("wait %s: %w", c.id(), err)
		}
		c.mu.Lock()
		c.exitC = nil // consumed; Shutdown must not wait on it again
		c.mu.Unlock()
		return runtime.ExitStatus{Code: int(code), ExitedAt: at}, nil
	}
}

// stopSignal parses the task's stop signal (SIGTERM by default).
func stopSignal(s string) (syscall.Signal, error) {
	if s == "" {
		return syscall.SIGTERM, nil
	}
	s = strings.ToUpper(s)
	if !strings.HasPrefix(s, "SIG") {
		s = "SIG" + s
	}
	if sig := unix.SignalNum(s); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown stop signal %q", s)
}

// Shutdown implements runtime.Controller: stop signal, grace, SIGKILL.
func (c *controller) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx = c.e.ns(ctx)
	if c.ctr == nil {
		ctr, err := c.e.client.LoadContainer(ctx, c.id())
		if errdefs.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		c.ctr = ctr
	}
	t, err := c.ctr.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	st, err := t.Status(ctx)
	if err != nil || st.Status == client.Stopped {
		return nil
	}
	if c.ctask != t || c.exitC == nil {
		if err := c.subscribe(t); err != nil {
			return err
		}
	}
	sig, err := stopSignal(c.task.Spec.Container.StopSignal)
	if err != nil {
		return err
	}
	if err := t.Kill(ctx, sig); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("signal %v: %w", sig, err)
	}
	clk := c.o.Clock
	if clk == nil {
		clk = runtime.SystemClock{}
	}
	timer := clk.NewTimer(runtime.StopGrace(c.task.Spec.Container))
	defer timer.Stop()
	select {
	case <-c.exitC:
		c.exitC = nil
		return nil
	case <-timer.C():
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := t.Kill(ctx, syscall.SIGKILL, client.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("kill: %w", err)
	}
	select {
	case <-c.exitC:
		c.exitC = nil
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Remove implements runtime.Controller.
func (c *controller) Remove(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		c.cancel()
		c.cancel = nil
	}
	c.ctr, c.ctask, c.exitC = nil, nil, nil
	if err := c.e.RemoveContainer(ctx, c.id()); err != nil {
		return err
	}
	return c.releaseVolumes(ctx)
}

// Info implements runtime.Inspector.
func (c *controller) Info() runtime.Info {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info
}

// Exec implements runtime.Execer: the command runs in the task's
// namespaces and cgroup with the task's user, env and cwd.
func (c *controller) Exec(ctx context.Context, args []string) (int, error) {
	c.mu.Lock()
	t, ctr := c.ctask, c.ctr
	c.execN++
	execID := fmt.Sprintf("health-%d", c.execN)
	c.mu.Unlock()
	if t == nil || ctr == nil {
		return -1, fmt.Errorf("exec: %w", errNoTask)
	}
	ctx = c.e.ns(ctx)
	spec, err := ctr.Spec(ctx)
	if err != nil {
		return -1, fmt.Errorf("exec: %w", err)
	}
	p := *spec.Process
	p.Args = args
	p.Terminal = false
	proc, err := t.Exec(ctx, execID, &p, cio.NullIO)
	if err != nil {
		return -1, fmt.Errorf("exec: %w", err)
	}
	// Deleting must not hang a health checker forever, even when the
	// caller's context is already done.
	del := func(opts ...client.ProcessDeleteOpts) {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = proc.Delete(dctx, opts...)
	}
	ch, err := proc.Wait(ctx)
	if err != nil {
		del(client.WithProcessKill)
		return -1, fmt.Errorf("exec wait: %w", err)
	}
	if err := proc.Start(ctx); err != nil {
		del(client.WithProcessKill)
		return -1, fmt.Errorf("exec start: %w", err)
	}
	select {
	case es := <-ch:
		del()
		code, _, err := es.Result()
		return int(code), err
	case <-ctx.Done():
		del(client.WithProcessKill)
		return -1, ctx.Err()
	}
}

// Stats implements runtime.StatsReader from the task's cgroup files.
func (c *controller) Stats(context.Context) (runtime.Stats, error) {
	return c.e.cg.stats(c.cgPath())
}
