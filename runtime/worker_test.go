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

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/testutil"
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

// housekeeping is the Worker's housekeeping period in these tests: Run keeps
// one timer of it armed, so every BlockUntil names it.
const housekeeping = time.Hour

// newWorker runs a Worker on a fake clock: no timer of it fires unless the
// test advances the clock.
func newWorker(t *testing.T, ex runtime.Executor, rec *recorder) (*runtime.Worker, *fake.Clock) {
	t.Helper()
	clk := fake.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	w, err := runtime.NewWorker(runtime.WorkerOptions{Executor: ex, DataDir: t.TempDir(), Reporter: rec.report, HouseKeeping: housekeeping, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return w, clk
}

// parked waits until the Worker's timers are exactly housekeeping and ds.
func parked(t *testing.T, clk *fake.Clock, ds ...time.Duration) {
	t.Helper()
	if err := clk.BlockUntil(append(ds, housekeeping)...); err != nil {
		t.Fatal(err)
	}
}

func task(id string, p api.RestartPolicy) api.Task {
	return api.Task{ID: id, ServiceName: "web", DesiredState: api.TaskRunning,
		Spec: api.TaskSpec{Container: api.ContainerSpec{Image: "demo"}, Restart: p}}
}

// wait bounds every poll: a guard against a hung test, never an assertion.
const wait = 10 * time.Second

func TestWorkerRestartPolicy(t *testing.T) {
	ex := fake.New()
	rec := &recorder{}
	w, clk := newWorker(t, ex, rec)
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
		testutil.Eventually(t, tk.ID+" running", wait, running(tk.ID))
	}

	_, pid := ex.Running("any")
	if err := ex.Exit("any", 0); err != nil {
		t.Fatal(err)
	}
	// Parked on its restart delay, the task cannot restart until the
	// clock reaches it: a nanosecond short, it still has not.
	parked(t, clk, time.Millisecond)
	clk.Advance(time.Millisecond - time.Nanosecond)
	parked(t, clk, time.Millisecond)
	if ok, _ := ex.Running("any"); ok || w.Tasks()["any"].Restarts != 0 {
		t.Fatalf("any restarted before its delay: %+v", w.Tasks()["any"])
	}
	clk.Advance(time.Nanosecond)
	testutil.Eventually(t, "any restarted", wait, func() bool {
		ok, p := ex.Running("any")
		st := w.Tasks()["any"]
		return ok && p != pid && st.State == api.TaskRunning && st.Restarts == 1
	})
	// Unhealthy while it had no process; a backend again once restarted.
	testutil.Eventually(t, "any healthy again", 15*time.Second, func() bool { return w.Tasks()["any"].Health == api.HealthNone })
	// A restart in place never reports a terminal state: the managers take
	// failed/complete as "the node gave up" and would replace the task.
	if got := rec.states("any"); !slices.Equal(got, []api.TaskState{api.TaskPreparing, api.TaskStarting, api.TaskRunning}) {
		t.Fatalf("any: reported %v", got)
	}

	if err := ex.Exit("none", 3); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "none failed", wait, func() bool {
		st := w.Tasks()["none"]
		return st.State == api.TaskFailed && st.ExitCode == 3 && strings.Contains(st.Message, "restart policy none")
	})

	// The delay doubles with each counted attempt: 1ms, then 2ms.
	for i := 0; i < 3; i++ {
		testutil.Eventually(t, "max2 running", wait, running("max2"))
		if err := ex.Exit("max2", 1); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			delay := time.Millisecond << i
			parked(t, clk, delay)
			clk.Advance(delay)
			want := uint64(i + 1)
			testutil.Eventually(t, "max2 restarted", wait, func() bool { st := w.Tasks()["max2"]; return st.Restarts == want && st.State == api.TaskRunning })
		}
	}
	testutil.Eventually(t, "max2 given up", wait, func() bool {
		st := w.Tasks()["max2"]
		return st.State == api.TaskFailed && st.Restarts == 2 && strings.Contains(st.Message, "max restart attempts")
	})
	// Given up, it waits for no timer.
	parked(t, clk)

	// Shutdown stops and removes, keeps the status; dropping a task forgets it.
	tasks[0].DesiredState = api.TaskShutdown
	if err := w.Set(context.Background(), tasks[:1]); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "any shut down", wait, func() bool { return w.Tasks()["any"].State == api.TaskShutdown })
	testutil.Eventually(t, "others forgotten", wait, func() bool {
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

// TestWorkerStopGrace: a task that ignores its stop signal is killed when
// its grace has passed on the Worker's clock, not a nanosecond before; a
// task with no grace gets runtime.DefaultStopGrace.
func TestWorkerStopGrace(t *testing.T) {
	for _, c := range []struct {
		name  string
		grace api.Duration
		want  time.Duration
	}{
		{"spec grace", api.Duration(3 * time.Second), 3 * time.Second},
		{"default grace", 0, runtime.DefaultStopGrace},
	} {
		t.Run(c.name, func(t *testing.T) {
			ex := fake.New()
			ex.IgnoreStop["stubborn"] = true
			w, clk := newWorker(t, ex, &recorder{})
			tk := task("stubborn", api.RestartPolicy{})
			tk.Spec.Container.StopGrace = c.grace
			if err := w.Set(context.Background(), []api.Task{tk}); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, "running", wait, func() bool { return w.Tasks()["stubborn"].State == api.TaskRunning })
			tk.DesiredState = api.TaskShutdown
			if err := w.Set(context.Background(), []api.Task{tk}); err != nil {
				t.Fatal(err)
			}
			// The runner bounds the whole stop at grace plus a margin; the
			// controller waits the grace itself.
			parked(t, clk, c.want, c.want+30*time.Second)
			clk.Advance(c.want - time.Nanosecond)
			parked(t, clk, c.want, c.want+30*time.Second)
			if ok, _ := ex.Running("stubborn"); !ok || slices.Contains(ex.Calls(), "kill stubborn") {
				t.Fatalf("killed before its grace: %v", ex.Calls())
			}
			clk.Advance(time.Nanosecond)
			testutil.Eventually(t, "shut down", wait, func() bool { return w.Tasks()["stubborn"].State == api.TaskShutdown })
			calls := ex.Calls()
			if i, j := slices.Index(calls, "kill stubborn"), slices.Index(calls, "remove stubborn"); i < 0 || j < i {
				t.Fatalf("calls %v: want a kill, then the remove", calls)
			}
			parked(t, clk)
		})
	}
}

func TestWorkerPrepareFailure(t *testing.T) {
	ex := fake.New()
	ex.FailPrepare["bad"] = errors.New("image not found")
	rec := &recorder{}
	w, clk := newWorker(t, ex, rec)
	if err := w.Set(context.Background(), []api.Task{task("bad", api.RestartPolicy{Condition: api.RestartOnFailure, MaxAttempts: 1, Delay: api.Duration(time.Millisecond)})}); err != nil {
		t.Fatal(err)
	}
	parked(t, clk, time.Millisecond)
	if st := w.Tasks()["bad"]; st.State.Terminal() || !strings.Contains(st.Err, "image not found") {
		t.Fatalf("before its one retry: %+v", st)
	}
	clk.Advance(time.Millisecond)
	testutil.Eventually(t, "failed after one retry", wait, func() bool {
		st := w.Tasks()["bad"]
		return st.State == api.TaskFailed && st.Restarts == 1 && strings.Contains(st.Err, "image not found") && strings.Contains(st.Message, "max restart")
	})
}

func TestWorkerAdoptsAndRemovesUnknown(t *testing.T) {
	ex := fake.New()
	ex.AddRunning("keep", 4242)
	ex.AddRunning("stray", 4343)
	rec := &recorder{}
	w, clk := newWorker(t, ex, rec)
	if err := w.Set(context.Background(), []api.Task{task("keep", api.RestartPolicy{})}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "keep adopted", wait, func() bool {
		st := w.Tasks()["keep"]
		return st.State == api.TaskRunning && st.PID == 4242 && strings.Contains(st.Message, "adopted")
	})
	// Set removes what no task wants before it returns.
	if ok, _ := ex.Running("stray"); ok {
		t.Fatal("stray still running after Set")
	}
	calls := ex.Calls()
	if slices.Contains(calls, "start keep") || !slices.Contains(calls, "adopt keep") || !slices.Contains(calls, "remove-unknown stray") {
		t.Fatalf("calls %v", calls)
	}
	// Set is idempotent: the same set again changes nothing, neither in Set
	// nor in the housekeeping round after it (Run re-arming its timer shows
	// the round is over).
	n := len(ex.Calls())
	if err := w.Set(context.Background(), []api.Task{task("keep", api.RestartPolicy{})}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(housekeeping)
	parked(t, clk)
	if got := ex.Calls(); len(got) != n {
		t.Fatalf("second Set did something: %v", got[n:])
	}
	// The round does remove a container that appears unwanted.
	ex.AddRunning("late", 4444)
	clk.Advance(housekeeping)
	parked(t, clk)
	if ok, _ := ex.Running("late"); ok || !slices.Contains(ex.Calls(), "remove-unknown late") {
		t.Fatalf("housekeeping left the unwanted container: %v", ex.Calls()[n:])
	}
}

// TestWorkerHealthAndMetrics walks a health check through its intervals on
// the fake clock: starting until the first probe, healthy after it, still
// healthy after one failure of two retries, unhealthy after the second.
func TestWorkerHealthAndMetrics(t *testing.T) {
	ex := fake.New()
	rec := &recorder{}
	w, clk := newWorker(t, ex, rec)
	tk := task("h", api.RestartPolicy{})
	interval := 5 * time.Second
	tk.Spec.Health = &api.HealthCheck{Kind: api.HealthExec, Command: []string{"check"}, Interval: api.Duration(interval), Retries: 2}
	if err := w.Set(context.Background(), []api.Task{tk}); err != nil {
		t.Fatal(err)
	}
	probe := func(want api.HealthState) {
		t.Helper()
		clk.Advance(interval)
		// Parked on the next interval: the probe and its report are done.
		parked(t, clk, interval)
		if got := w.Tasks()["h"].Health; got != want {
			t.Fatalf("health %s, want %s", got, want)
		}
	}
	parked(t, clk, interval)
	if got := w.Tasks()["h"].Health; got != api.HealthStarting {
		t.Fatalf("health before the first probe: %s", got)
	}
	probe(api.HealthHealthy)
	ex.SetExecResult("h", 1)
	probe(api.HealthHealthy)
	probe(api.HealthUnhealthy)
	if st := w.Tasks()["h"]; st.State != api.TaskRunning || st.Restarts != 0 {
		t.Fatalf("unhealthy task was not left running: %+v", st)
	}
	if err := promtest.CollectAndCompare(w.Collector(), strings.NewReader(`
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
	if problems, err := promtest.CollectAndLint(w.Collector()); err != nil || len(problems) != 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}

// TestWorkerHealthStartPeriod: failures inside the start period do not
// count; the first one after it does.
func TestWorkerHealthStartPeriod(t *testing.T) {
	ex := fake.New()
	ex.ExecResult["slow"] = 1
	w, clk := newWorker(t, ex, &recorder{})
	tk := task("slow", api.RestartPolicy{})
	interval := 5 * time.Second
	tk.Spec.Health = &api.HealthCheck{Kind: api.HealthExec, Command: []string{"check"}, Interval: api.Duration(interval),
		Retries: 1, StartPeriod: api.Duration(3 * interval)}
	if err := w.Set(context.Background(), []api.Task{tk}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []api.HealthState{api.HealthStarting, api.HealthStarting, api.HealthUnhealthy} {
		parked(t, clk, interval)
		clk.Advance(interval)
		parked(t, clk, interval)
		if got := w.Tasks()["slow"].Health; got != want {
			t.Fatalf("after %d failed probes (%s into a %s start period): %s, want %s", i+1, time.Duration(i+1)*interval, 3*interval, got, want)
		}
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
	if err := runtime.Probe(ctx, runtime.SystemClock{}, hc, ap.Addr(), nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	healthy = false
	mu.Unlock()
	if err := runtime.Probe(ctx, runtime.SystemClock{}, hc, ap.Addr(), nil); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("want 503, got %v", err)
	}
	hc.Kind = api.HealthTCP
	if err := runtime.Probe(ctx, runtime.SystemClock{}, hc, ap.Addr(), nil); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	hc.Port = closed.Port()
	if err := runtime.Probe(ctx, runtime.SystemClock{}, hc, closed.Addr(), nil); err == nil {
		t.Fatal("tcp probe of a closed port passed")
	}
	if err := runtime.Probe(ctx, runtime.SystemClock{}, api.HealthCheck{Kind: api.HealthExec, Command: []string{"x"}}, netip.Addr{}, nil); err == nil {
		t.Fatal("exec probe without an execer passed")
	}
}

// TestProbeTimeout: a probe that gets no answer fails when its timeout has
// passed on the clock, and not before.
func TestProbeTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	ap := netip.MustParseAddrPort(srv.Listener.Addr().String())
	hc := api.HealthCheck{Kind: api.HealthHTTP, Port: ap.Port(), Timeout: api.Duration(2 * time.Second)}
	clk := fake.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	res := make(chan error, 1)
	go func() { res <- runtime.Probe(context.Background(), clk, hc, ap.Addr(), nil) }()
	if err := clk.BlockUntil(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2*time.Second - time.Nanosecond)
	select {
	case err := <-res:
		t.Fatalf("probe ended before its timeout: %v", err)
	default:
	}
	clk.Advance(time.Nanosecond)
	select {
	case err := <-res:
		if err == nil || !strings.Contains(err.Error(), "no answer within 2s") {
			t.Fatalf("want a timeout, got %v", err)
		}
	case <-time.After(wait):
		t.Fatal("probe did not end at its timeout")
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
	if got := read(runtime.LogOptions{Tail: -1}); got != "" {
		t.Fatalf("no lines: %q", got)
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

// TestWorkerAdoptionKeepsHealth: a process adopted after an agent restart
// keeps the health its assignment recorded for that same process, so a
// healthy backend never leaves its services because the daemon restarted;
// a different process (the PID the assignment names is gone) starts over.
func TestWorkerAdoptionKeepsHealth(t *testing.T) {
	for _, c := range []struct {
		name     string
		recorded int // the PID the assignment last recorded
		want     api.HealthState
	}{
		{"same process", 4242, api.HealthHealthy},
		{"another process", 4000, api.HealthStarting},
	} {
		t.Run(c.name, func(t *testing.T) {
			ex := fake.New()
			ex.AddRunning("h", 4242)
			rec := &recorder{}
			w, _ := newWorker(t, ex, rec)
			tk := task("h", api.RestartPolicy{})
			tk.Spec.Health = &api.HealthCheck{Kind: api.HealthExec, Command: []string{"check"}, Interval: api.Duration(time.Hour), Retries: 2}
			tk.Status = api.TaskStatus{State: api.TaskRunning, PID: c.recorded, Health: api.HealthHealthy}
			if err := w.Set(context.Background(), []api.Task{tk}); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, "adopted", wait, func() bool {
				st := w.Tasks()["h"]
				return st.State == api.TaskRunning && st.PID == 4242
			})
			rec.mu.Lock()
			defer rec.mu.Unlock()
			for _, st := range rec.seen["h"] {
				if st.State == api.TaskRunning && st.Health != c.want {
					t.Errorf("reported running with health %q, want %q", st.Health, c.want)
				}
			}
		})
	}
}

// A task without a health check whose process exits is reported unhealthy
// at once, so every node's table drops its address for the restart delay;
// the restarted process is a backend again.
func TestWorkerExitLeavesTheTables(t *testing.T) {
	ex := fake.New()
	rec := &recorder{}
	w, _ := newWorker(t, ex, rec)
	tk := task("crash", api.RestartPolicy{Condition: api.RestartAny, Delay: api.Duration(time.Hour)})
	if err := w.Set(context.Background(), []api.Task{tk}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "running", 15*time.Second, func() bool { ok, _ := ex.Running("crash"); return ok && w.Tasks()["crash"].State == api.TaskRunning })
	if h := w.Tasks()["crash"].Health; h != api.HealthNone {
		t.Fatalf("running without a check: health %q", h)
	}
	if err := ex.Exit("crash", 137); err != nil {
		t.Fatal(err)
	}
	// The restart is an hour away; the exit is reported now.
	testutil.Eventually(t, "reported unhealthy after the exit", 15*time.Second, func() bool {
		st := w.Tasks()["crash"]
		return st.State == api.TaskRunning && st.Health == api.HealthUnhealthy && st.PID == 0
	})
}
