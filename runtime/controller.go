package runtime

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// ExitStatus is how a task's main process ended.
type ExitStatus struct {
	Code     int
	ExitedAt time.Time
	// OOMKilled is set when the executor knows the kernel killed the task
	// for exceeding its memory limit.
	OOMKilled bool
}

// Failed reports whether the exit counts as a failure for the restart policy.
func (e ExitStatus) Failed() bool { return e.Code != 0 || e.OOMKilled }

// Controller runs one task. Every method is idempotent so that a Worker
// restarted on a node with running containers can call Prepare and Start
// again and end up adopting what is there (same PIDs) instead of starting
// anew. Start on a task whose process has exited starts a new process in
// the same container: that is how restarts happen in place.
type Controller interface {
	// Prepare makes sure the image and the container exist.
	Prepare(ctx context.Context) error
	// Start creates the task process, attaches its network and starts it,
	// unless it is already running.
	Start(ctx context.Context) error
	// Wait blocks until the process exits or ctx ends.
	Wait(ctx context.Context) (ExitStatus, error)
	// Shutdown stops the process with the task's stop signal, then SIGKILL
	// after its grace period.
	Shutdown(ctx context.Context) error
	// Remove deletes the process, its network attachment and the container.
	Remove(ctx context.Context) error
}

// Info is what a controller knows about its running task.
type Info struct {
	ContainerID string
	PID         int
	Addr        netip.Addr
	// Adopted is true when Start found the process already running.
	Adopted bool
	// Restarts is how many times the executor started a new process in
	// this container, when it records that (so adoption keeps the count).
	Restarts uint64
}

// Inspector is implemented by controllers that can describe their task.
type Inspector interface {
	Info() Info
}

// Execer is implemented by controllers that can run a command inside the
// task (exec health checks).
type Execer interface {
	Exec(ctx context.Context, args []string) (exitCode int, err error)
}

// Stats is a task's resource use.
type Stats struct {
	CPUSeconds  float64
	MemoryBytes uint64
}

// StatsReader is implemented by controllers that can read their task's usage.
type StatsReader interface {
	Stats(ctx context.Context) (Stats, error)
}

// Owned is a container an executor finds in its namespace.
type Owned struct {
	ContainerID string
	TaskID      string
	Running     bool
}

// ControllerOptions are per-task settings the Worker decides.
type ControllerOptions struct {
	// LogPath is the file the task's stdout and stderr are written to.
	LogPath string
	// RawLogPath, when set, is where the executor appends the raw output
	// instead; the Worker collects it into LogPath (WorkerOptions.CollectLogs).
	RawLogPath string
	// LogMaxBytes and LogMaxFiles bound it when the executor rotates.
	LogMaxBytes int64
	LogMaxFiles int
	// Clock is the Worker's: a controller times its stop grace with it.
	Clock Clock
	// PullProgress, when set, is told how far Prepare's image pull is, as
	// often as the controller samples it; the Worker throttles the reports.
	// It is not called once Prepare returned.
	PullProgress func(api.PullProgress)
}

// TaggedLogger is implemented by executors whose log files hold
// "<RFC3339Nano> <stream> <text>" lines written by a logger that rotates
// them itself; otherwise log files are raw output the Worker rotates.
type TaggedLogger interface {
	TaggedLogs() bool
}

// Executor makes controllers and knows which containers belong to this node.
type Executor interface {
	Controller(task *api.Task, o ControllerOptions) (Controller, error)
	// List returns the containers this node owns (by label).
	List(ctx context.Context) ([]Owned, error)
	// RemoveContainer stops and deletes a container the Worker no longer wants.
	RemoveContainer(ctx context.Context, containerID string) error
}

// ErrNotFound is returned (wrapped) when a task or container does not exist.
var ErrNotFound = errors.New("not found")

// Network gives a task's network namespace its interface and address. The
// CNI engineer implements it (cni/); tests use a small veth+bridge one.
//
// Attach is called after the task's process exists and before it starts,
// with /proc/<pid>/ns/net. Detach is called when the process is deleted;
// netnsPath is empty when the namespace is already gone (the process died),
// so an implementation must release its address by containerID alone.
type Network interface {
	Attach(ctx context.Context, containerID, netnsPath string) (netip.Addr, error)
	Detach(ctx context.Context, containerID, netnsPath string) error
}

// CgroupV2Pather is implemented by executors that place tasks in the v2
// cgroup hierarchy (where the eBPF dataplane attaches socket programs).
type CgroupV2Pather interface {
	CgroupV2Path() string
}

// CgroupV2Path is the node's parent cgroup in the v2 hierarchy, empty when
// the executor does not use one.
func (w *Worker) CgroupV2Path() string {
	if p, ok := w.o.Executor.(CgroupV2Pather); ok {
		return p.CgroupV2Path()
	}
	return ""
}
