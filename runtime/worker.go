package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/api"
)

// WorkerOptions configure a Worker.
type WorkerOptions struct {
	// Executor runs containers (runtime/containerd, or runtime/fake in tests).
	Executor Executor
	// DataDir holds task log files (<DataDir>/logs).
	DataDir string
	Logger  *zap.Logger
	// Clock drives every timestamp and timer of the Worker and is handed
	// to the controllers (default SystemClock).
	Clock Clock
	// Reporter receives every status change, in order per task. It is
	// called from the task's goroutine and should not block for long.
	Reporter func(taskID string, st api.TaskStatus)
	// LogMaxBytes and LogMaxFiles bound each task's log (10 MiB, 3 files).
	LogMaxBytes int64
	LogMaxFiles int
	// HouseKeeping is how often Run rotates logs and removes containers no
	// task wants (default 2s).
	HouseKeeping time.Duration
	// CollectLogs selects the node log path (see logcollect.go): the
	// executor writes each task's raw output to RawLogPath and Run's one
	// collector loop turns it into the timestamped log every LogCollect
	// (default 250ms). Without it the executor writes LogPath itself.
	CollectLogs bool
	LogCollect  time.Duration
}

// Worker runs the tasks assigned to this node. Set gives it the complete
// desired set; one goroutine per task drives that task's Controller and
// applies its restart policy; Run does housekeeping. Stopping Run (or the
// agent) leaves containers running: a new Worker adopts them.
type Worker struct {
	o   WorkerOptions
	log *zap.Logger

	ctx    context.Context // lives as long as the Worker; runners derive from it
	cancel context.CancelFunc

	mu      sync.Mutex
	runners map[string]*runner
	status  map[string]api.TaskStatus
	synced  bool // Set was called at least once: unknown containers may go
}

// NewWorker checks the options and creates a Worker. It does not touch
// containers until Set is called.
func NewWorker(o WorkerOptions) (*Worker, error) {
	if o.Executor == nil {
		return nil, errors.New("new worker: no executor")
	}
	if o.DataDir == "" {
		return nil, errors.New("new worker: no data dir")
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.Reporter == nil {
		o.Reporter = func(string, api.TaskStatus) {}
	}
	if o.LogMaxBytes <= 0 {
		o.LogMaxBytes = 10 << 20
	}
	if o.LogMaxFiles <= 0 {
		o.LogMaxFiles = 3
	}
	if o.HouseKeeping <= 0 {
		o.HouseKeeping = 2 * time.Second
	}
	if o.LogCollect <= 0 {
		o.LogCollect = 250 * time.Millisecond
	}
	if err := os.MkdirAll(filepath.Join(o.DataDir, "logs"), 0o750); err != nil {
		return nil, fmt.Errorf("new worker: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Worker{
		o: o, log: o.Logger, ctx: ctx, cancel: cancel,
		runners: map[string]*runner{},
		status:  map[string]api.TaskStatus{},
	}, nil
}

// LogPath is where a task's output is written.
func (w *Worker) LogPath(taskID string) string {
	return filepath.Join(w.o.DataDir, "logs", taskID+".log")
}

// Set makes the node's tasks match tasks, the complete desired set for this
// node. It is idempotent. Tasks that should run and have no goroutine get
// one (which adopts a running container if there is one); tasks whose
// desired state is shutdown or remove, and tasks no longer listed, are
// stopped and removed; containers of this node that belong to no listed
// task are stopped and removed.
func (w *Worker) Set(ctx context.Context, tasks []api.Task) error {
	want := map[string]bool{}
	w.mu.Lock()
	for i := range tasks {
		t := tasks[i]
		want[t.ID] = true
		r, ok := w.runners[t.ID]
		switch {
		case ok:
			r.setDesired(t.DesiredState)
		case t.DesiredState.Terminal():
			// Nothing runs it here; the container, if any, is removed below.
			want[t.ID] = false
			if st, ok := w.status[t.ID]; ok && !st.State.Terminal() {
				delete(w.status, t.ID)
			}
		default:
			co := ControllerOptions{LogPath: w.LogPath(t.ID), LogMaxBytes: w.o.LogMaxBytes, LogMaxFiles: w.o.LogMaxFiles, Clock: w.o.Clock,
				PullProgress: w.pullReporter(t.ID)}
			if w.o.CollectLogs {
				co.RawLogPath = RawLogPath(co.LogPath)
			}
			ctl, err := w.o.Executor.Controller(&t, co)
			if err != nil {
				w.mu.Unlock()
				return fmt.Errorf("set task %s: %w", t.ID, err)
			}
			r := newRunner(w, t, ctl)
			w.runners[t.ID] = r
			go r.run()
		}
	}
	for id, r := range w.runners {
		if !want[id] {
			r.setDesired(api.TaskRemove)
		}
	}
	w.synced = true
	w.mu.Unlock()
	return w.removeUnknown(ctx, want)
}

// removeUnknown stops containers of this node's namespace that no runner owns.
func (w *Worker) removeUnknown(ctx context.Context, want map[string]bool) error {
	owned, err := w.o.Executor.List(ctx)
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	var errs []error
	for _, c := range owned {
		w.mu.Lock()
		_, running := w.runners[c.TaskID]
		w.mu.Unlock()
		if running || want[c.TaskID] {
			continue
		}
		w.log.Info("removing container no task wants", zap.String("container", c.ContainerID), zap.String("task_id", c.TaskID))
		if err := w.o.Executor.RemoveContainer(ctx, c.ContainerID); err != nil {
			errs = append(errs, fmt.Errorf("remove container %s: %w", c.ContainerID, err))
		}
	}
	return errors.Join(errs...)
}

// Run does housekeeping until ctx ends: log rotation and removal of
// containers no task wants. When it returns, the task goroutines stop
// watching their tasks but the containers keep running.
func (w *Worker) Run(ctx context.Context) error {
	defer w.cancel()
	if w.o.CollectLogs {
		done := make(chan struct{})
		defer func() { <-done }()
		go func() { defer close(done); w.collectLoop(ctx) }()
	}
	for {
		if err := sleep(ctx, w.o.Clock, w.o.HouseKeeping, nil); err != nil {
			return nil
		}
		w.mu.Lock()
		ids := make([]string, 0, len(w.runners))
		want := map[string]bool{}
		for id := range w.runners {
			ids = append(ids, id)
			want[id] = true
		}
		synced := w.synced
		w.mu.Unlock()
		for _, id := range ids {
			if w.tagged() {
				break // the task logger or the collector rotates the files
			}
			if _, err := RotateLog(w.LogPath(id), w.o.LogMaxBytes, w.o.LogMaxFiles); err != nil {
				w.log.Warn("rotate log", zap.String("task_id", id), zap.Error(err))
			}
		}
		if synced {
			if err := w.removeUnknown(ctx, want); err != nil && ctx.Err() == nil {
				w.log.Warn("housekeeping", zap.Error(err))
			}
		}
	}
}

// Close stops watching tasks without stopping them (as Run returning does).
func (w *Worker) Close() { w.cancel() }

// Tasks returns the last status of every task this Worker knows.
func (w *Worker) Tasks() map[string]api.TaskStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]api.TaskStatus, len(w.status))
	for k, v := range w.status {
		out[k] = v
	}
	return out
}

// Logs returns a task's output (see LogOptions).
func (w *Worker) Logs(ctx context.Context, taskID string, o LogOptions) (io.ReadCloser, error) {
	return readLogs(ctx, w.LogPath(taskID), w.o.LogMaxFiles, w.tagged(), o, w.o.Clock, 100*time.Millisecond)
}

// collectLoop is the node's one log path: every LogCollect it moves what
// each task's shim appended to its raw file into the task's log.
func (w *Worker) collectLoop(ctx context.Context) {
	var warned bool
	for sleep(ctx, w.o.Clock, w.o.LogCollect, nil) == nil {
		raws, _ := filepath.Glob(filepath.Join(w.o.DataDir, "logs", "*.raw"))
		for _, raw := range raws {
			log := strings.TrimSuffix(raw, ".raw") + ".log"
			if _, err := collectLog(raw, log, w.o.LogMaxBytes, w.o.LogMaxFiles, w.o.Clock.Now()); err != nil && !warned {
				// Once: a full disk would otherwise log four times a second.
				warned = true
				w.log.Warn("collect task log", zap.String("file", raw), zap.Error(err))
			}
		}
	}
}

func (w *Worker) tagged() bool {
	if w.o.CollectLogs {
		return true
	}
	tl, ok := w.o.Executor.(TaggedLogger)
	return ok && tl.TaggedLogs()
}

// report records and publishes a task's status. It enforces Transition:
// an illegal change is a bug, logged and not published.
func (w *Worker) report(taskID string, restart bool, mut func(*api.TaskStatus)) {
	w.mu.Lock()
	old, had := w.status[taskID]
	st := old
	mut(&st)
	if had && st.State != old.State {
		if err := Transition(old.State, st.State, restart); err != nil {
			w.mu.Unlock()
			w.log.Error("refusing task state change", zap.String("task_id", taskID), zap.Error(err))
			return
		}
	}
	st.Timestamp = w.o.Clock.Now()
	w.status[taskID] = st
	w.mu.Unlock()
	w.o.Reporter(taskID, st)
}

func (w *Worker) forget(taskID string, r *runner, keepStatus bool) {
	w.mu.Lock()
	if w.runners[taskID] == r {
		delete(w.runners, taskID)
	}
	if !keepStatus {
		delete(w.status, taskID)
	}
	w.mu.Unlock()
}
