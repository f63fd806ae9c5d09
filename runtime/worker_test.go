package runtime_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/runtime"
	"github.com/warrenhq/warren/runtime/fake"
)

type recorder struct {
	mu   sync.Mutex
	seen map[string][]api.TaskStatus
}

func (r *recorder) report(id string, st api.TaskStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string][]api.TaskStatus{}
	}
	r.seen[id] = append(r.seen[id], st)
}

func (r *recorder) states(id string) []api.TaskState {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []api.TaskState
	for _, s := range r.seen[id] {
		if len(out) == 0 || out[len(out)-1] != s.State {
			out = append(out, s.State)
		}
	}
	return out
}

func newWorker(t *testing.T, ex runtime.Executor, rec *recorder) *runtime.Worker {
	t.Helper()
	w, err := runtime.NewWorker(runtime.WorkerOptions{Executor: ex, DataDir: t.TempDir(), Reporter: rec.report, HouseKeeping: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func task(id string, p api.RestartPolicy) api.Task {
	return api.Task{ID: id, ServiceName: "web", DesiredState: api.TaskRunning,
		Spec: api.TaskSpec{Container: api.ContainerSpec{Image: "demo"}, Restart: p}}
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("not reached within 5s: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestWorkerRestartPolicy(t *testing.T) {
	ex := fake.New()
	rec := &recorder{}
	w := newWorker(t, ex, rec)
	ms := api.Duration(time.Millisecond)
	tasks := []api.Task{
		task("any", api.RestartPolicy{Condition: api.RestartAny, Delay: ms}),
		task("none", api.RestartPolicy{Condition: api.RestartNone}),
		task("max2", api.RestartPolicy{Condition: api.RestartOnFailure, Delay: ms, MaxAttempts: 2}),
	}
	if err := w.Set(context.Background(), tasks); err != nil {
		t.Fatal(err)
	}
	running := func(id string) func() bool {
		return func() bool { ok, _ := ex.Running(id); return ok && w.Tasks()[id].State == api.TaskRunning }
	}
	for _, tk := range tasks {
		eventually(t, tk.ID+" running", running(tk.ID))
	}

	_, pid := ex.Running("any")
	if err := ex.Exit("any", 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, "any restarted", func() bool {
		ok, p := ex.Running("any")
		st := w.Tasks()["any"]
		return ok && p != pid && st.State == api.TaskRunning && st.Restarts == 1
	})
	// A restart in place never reports a terminal state: the managers take
	// failed/complete as "the node gave up" and would replace the task.
	if got := rec.states("any"); !slices.Equal(got, []api.TaskState{api.TaskPreparing, api.TaskStarting, api.TaskRunning}) {
		t.Fatalf("any: reported %v", got)
	}

	if err := ex.Exit("none", 3); err != nil {
		t.Fatal(err)
	}
	eventually(t, "none failed", func() bool {
		st := w.Tasks()["none"]
		return st.State == api.TaskFailed && st.ExitCode == 3 && strings.Contains(st.Message, "restart policy none")
	})

	for i := 0; i < 3; i++ {
		eventually(t, "max2 running", running("max2"))
		if err := ex.Exit("max2", 1); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			want := uint64(i + 1)
			eventually(t, "max2 restarted", func() bool { st := w.Tasks()["max2"]; return st.Restarts == want && st.State == api.TaskRunning })
		}
	}
	eventually(t, "max2 given up", func() bool {
		st := w.Tasks()["max2"]
		return st.State == api.TaskFailed && st.Restarts == 2 && strings.Contains(st.Message, "max restart attempts")
	})

	// Shutdown stops and removes, keeps the status; dropping a task forgets it.
	tasks[0].DesiredState = api.TaskShutdown
	if err := w.Set(context.Background(), tasks[:1]); err != nil {
		t.Fatal(err)
	}
	eventually(t, "any shut down", func() bool { return w.Tasks()["any"].State == api.TaskShutdown })
	eventually(t, "others forgotten", func() bool {
		ts := w.Tasks()
		_, a := ts["none"]
		_, b := ts["max2"]
		return !a && !b
	})
	calls := ex.Calls()
	for _, want := range []string{"shutdown any", "remove any", "remove none", "remove max2"} {
		if !slices.Contains(calls, want) {
			t.Errorf("no %q in %v", want, calls)
		}
	}
	if owned, _ := ex.List(context.Background()); len(owned) != 0 {
		t.Fatalf("containers left: %+v", owned)
	}
}

func TestWorkerPrepareFailure(t *testing.T) {
	ex := fake.New()
	ex.FailPrepare["bad"] = errors.New("image not found")
	rec := &recorder{}
	w := newWorker(t, ex, rec)
	if err := w.Set(context.Background(), []api.Task{task("bad", api.RestartPolicy{Condition: api.RestartOnFailure, MaxAttempts: 1, Delay: api.Duration(time.Millisecond)})}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "failed after one retry", func() bool {
		st := w.Tasks()["bad"]
		return st.State == api.TaskFailed && st.Restarts == 1 && strings.Contains(st.Err, "image not found") && strings.Contains(st.Message, "max restart")
	})
}

func TestWorkerAdoptsAndRemovesUnknown(t *testing.T) {
	ex := fake.New()
	ex.AddRunning("keep", 4242)
	ex.AddRunning("stray", 4343)
	rec := &recorder{}
	w := newWorker(t, ex, rec)
	if err := w.Set(context.Background(), []api.Task{task("keep", api.RestartPolicy{})}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "keep adopted", func() bool {
		st := w.Tasks()["keep"]
		return st.State == api.TaskRunning && st.PID == 4242 && strings.Contains(st.Message, "adopted")
	})
	eventually(t, "stray removed", func() bool { ok, _ := ex.Running("stray"); return !ok })
	calls := ex.Calls()
	if slices.Contains(calls, "start keep") || !slices.Contains(calls, "adopt keep") || !slices.Contains(calls, "remove-unknown stray") {
		t.Fatalf("calls %v", calls)
	}
	// Set is idempotent: the same set again changes nothing.
	n := len(ex.Calls())
	if err := w.Set(context.Background(), []api.Task{task("keep", api.RestartPolicy{})}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if got := ex.Calls(); len(got) != n {
		t.Fatalf("second Set did something: %v", got[n:])
	}
}

func TestWorkerHealthAndMetrics(t *testing.T) {
	ex := fake.New()
	rec := &recorder{}
	w := newWorker(t, ex, rec)
	tk := task("h", api.RestartPolicy{})
	tk.Spec.Health = &api.HealthCheck{Kind: api.HealthExec, Command: []string{"check"}, Interval: api.Duration(5 * time.Millisecond), Retries: 2}
	if err := w.Set(context.Background(), []api.Task{tk}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "healthy", func() bool { return w.Tasks()["h"].Health == api.HealthHealthy })
	ex.SetExecResult("h", 1)
	eventually(t, "unhealthy", func() bool { return w.Tasks()["h"].Health == api.HealthUnhealthy })
	if st := w.Tasks()["h"]; st.State != api.TaskRunning || st.Restarts != 0 {
		t.Fatalf("unhealthy task was not left running: %+v", st)
	}
	if err := testutil.CollectAndCompare(w.Collector(), strings.NewReader(`
# HELP warren_task_cpu_seconds_total CPU time used by the task's processes.
# TYPE warren_task_cpu_seconds_total counter
warren_task_cpu_seconds_total{service="web",task="h"} 1.5
# HELP warren_task_memory_bytes Memory charged to the task's cgroup.
# TYPE warren_task_memory_bytes gauge
warren_task_memory_bytes{service="web",task="h"} 4096
# HELP warren_task_restarts_total Times the node restarted the task in place.
# TYPE warren_task_restarts_total counter
warren_task_restarts_total{service="web",task="h"} 0
`)); err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.CollectAndLint(w.Collector()); err != nil || len(problems) != 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}

func TestProbe(t *testing.T) {
	var healthy = true
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if !healthy || r.URL.Path != "/healthz" {
			w.WriteHeader(503)
		}
	}))
	defer srv.Close()
	ap := netip.MustParseAddrPort(srv.Listener.Addr().String())
	hc := api.HealthCheck{Kind: api.HealthHTTP, Path: "/healthz", Port: ap.Port(), Timeout: api.Duration(time.Second)}
	ctx := context.Background()
	if err := runtime.Probe(ctx, hc, ap.Addr(), nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	healthy = false
	mu.Unlock()
	if err := runtime.Probe(ctx, hc, ap.Addr(), nil); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("want 503, got %v", err)
	}
	hc.Kind = api.HealthTCP
	if err := runtime.Probe(ctx, hc, ap.Addr(), nil); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	hc.Port = closed.Port()
	if err := runtime.Probe(ctx, hc, closed.Addr(), nil); err == nil {
		t.Fatal("tcp probe of a closed port passed")
	}
	if err := runtime.Probe(ctx, api.HealthCheck{Kind: api.HealthExec, Command: []string{"x"}}, netip.Addr{}, nil); err == nil {
		t.Fatal("exec probe without an execer passed")
	}
}

func TestLogsRotateAndFollow(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "t.log")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range []string{"one\n", "two\n", "three\n"} {
		f.WriteString(l)
	}
	if rotated, err := runtime.RotateLog(p, 5, 2); err != nil || !rotated {
		t.Fatalf("rotate: %v %v", rotated, err)
	}
	f.WriteString("four\n") // the writer keeps its fd, O_APPEND lands at the new end
	w, err := runtime.NewWorker(runtime.WorkerOptions{Executor: fake.New(), DataDir: dir, LogMaxFiles: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Worker logs live in <DataDir>/logs/<task>.log.
	if err := os.Rename(p, w.LogPath("t")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".1", w.LogPath("t")+".1"); err != nil {
		t.Fatal(err)
	}
	read := func(o runtime.LogOptions) string {
		rc, err := w.Logs(context.Background(), "t", o)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		return string(b)
	}
	if got := read(runtime.LogOptions{}); got != "one\ntwo\nthree\nfour\n" {
		t.Fatalf("all: %q", got)
	}
	if got := read(runtime.LogOptions{Tail: 2}); got != "three\nfour\n" {
		t.Fatalf("tail: %q", got)
	}
	if _, err := w.Logs(context.Background(), "t", runtime.LogOptions{Timestamps: true}); err == nil {
		t.Fatal("timestamps accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	rc, err := w.Logs(ctx, "t", runtime.LogOptions{Follow: true, Tail: 1})
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("five\n")
	buf := make([]byte, 0, 64)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(string(buf), "five") && time.Now().Before(deadline) {
		tmp := make([]byte, 64)
		n, _ := rc.Read(tmp)
		buf = append(buf, tmp[:n]...)
	}
	cancel()
	rc.Close()
	if string(buf) != "four\nfive\n" {
		t.Fatalf("follow: %q", buf)
	}
}

type taggedFake struct{ *fake.Executor }

func (taggedFake) TaggedLogs() bool { return true }

func TestTaggedLogs(t *testing.T) {
	dir := t.TempDir()
	w, err := runtime.NewWorker(runtime.WorkerOptions{Executor: taggedFake{fake.New()}, DataDir: dir, LogMaxFiles: 2})
	if err != nil {
		t.Fatal(err)
	}
	p := w.LogPath("t")
	os.WriteFile(p+".1", []byte("2026-01-01T00:00:00Z stdout one\n"), 0o640)
	os.WriteFile(p, []byte("2026-01-01T00:00:01Z stderr two\n2026-01-01T00:00:02Z stdout thr"), 0o640)
	read := func(o runtime.LogOptions) string {
		rc, err := w.Logs(context.Background(), "t", o)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		return string(b)
	}
	if got := read(runtime.LogOptions{}); got != "one\ntwo\n" {
		t.Fatalf("plain: %q", got)
	}
	if got := read(runtime.LogOptions{Timestamps: true, Tail: 1}); got != "2026-01-01T00:00:01Z two\n" {
		t.Fatalf("timestamps: %q", got)
	}
	// Follow completes the partial line and follows a rename rotation.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rc, err := w.Logs(ctx, "t", runtime.LogOptions{Follow: true, Tail: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	f, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("ee\n")
	f.Close()
	os.Rename(p, p+".1")
	os.WriteFile(p, []byte("2026-01-01T00:00:03Z stdout four\n"), 0o640)
	var got []byte
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(string(got), "four") && time.Now().Before(deadline) {
		buf := make([]byte, 64)
		n, _ := rc.Read(buf)
		got = append(got, buf[:n]...)
	}
	if string(got) != "two\nthree\nfour\n" {
		t.Fatalf("follow: %q", got)
	}
}
