package agent

import (
	"context"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/warrenhq/warren/controlplane/api"
)

func task(id, svc string, desired api.TaskState) api.Task {
	return api.Task{ID: id, ServiceID: svc, ServiceName: svc, NodeID: "n1", DesiredState: desired}
}

func TestSummarize(t *testing.T) {
	run, stop := api.TaskRunning, api.TaskShutdown
	for _, tc := range []struct {
		name          string
		before, after []api.Task
		want          SyncSummary
	}{
		{"nothing changed", []api.Task{task("a", "s", run), task("b", "s", run)}, []api.Task{task("a", "s", run), task("b", "s", run)}, SyncSummary{Kept: 2}},
		{"one asked to stop, one gone", []api.Task{task("a", "s", run), task("b", "s", run)}, []api.Task{task("a", "s", stop)}, SyncSummary{Stopped: 2}},
		{"a newer spec replaced one", []api.Task{task("a", "s", run), task("b", "s", run)}, []api.Task{task("a", "s", run), task("b", "s", stop), task("c", "s", run)}, SyncSummary{Kept: 1, Stopped: 1, Updated: 1}},
		{"stopped by the node while cut off: not counted", []api.Task{task("a", "s", stop)}, []api.Task{task("a", "s", run)}, SyncSummary{Updated: 1}},
	} {
		if got := summarize(tc.before, tc.after); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestStopsOf(t *testing.T) {
	kept := task("b", "web", api.TaskShutdown)
	kept.StopReason = "reconcile keep-original: the slot keeps task x on node n2"
	got := stopsOf(
		[]api.Task{task("a", "web", api.TaskRunning), task("b", "web", api.TaskRunning), task("c", "web", api.TaskRunning), task("d", "web", api.TaskShutdown)},
		[]api.Task{task("a", "web", api.TaskRunning), kept, task("d", "web", api.TaskShutdown)})
	var lines []string
	for _, s := range got {
		lines = append(lines, s.task.ID+": "+s.why)
	}
	want := []string{"b: reconcile keep-original: the slot keeps task x on node n2", "c: it is no longer assigned to this node"}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("stops %q, want %q", lines, want)
	}
}

func TestStopAfterCut(t *testing.T) {
	tasks := []api.Task{task("a", "once", api.TaskRunning), task("b", "web", api.TaskRunning), task("c", "once", api.TaskShutdown)}
	limits := map[string]api.Duration{"once": api.Duration(time.Hour)}
	for _, tc := range []struct {
		cut     time.Duration
		stopped []string
	}{
		{0, nil},
		{59 * time.Minute, nil},
		{time.Hour, []string{"a"}},
		{24 * time.Hour, []string{"a"}},
	} {
		out, stopped := stopAfterCut(tasks, limits, tc.cut)
		var ids []string
		for _, s := range stopped {
			ids = append(ids, s.ID)
		}
		if !reflect.DeepEqual(ids, tc.stopped) {
			t.Errorf("cut %s: stopped %v, want %v", tc.cut, ids, tc.stopped)
		}
		if len(out) != len(tasks) || out[1].DesiredState != api.TaskRunning {
			t.Errorf("cut %s: handed %+v; every task is handed over, only the stopped ones changed", tc.cut, out)
		}
		if tasks[0].DesiredState != api.TaskRunning {
			t.Fatal("stopAfterCut changed its argument")
		}
	}
	since := t0()
	if at := nextStop(tasks, limits, since); !at.Equal(since.Add(time.Hour)) {
		t.Errorf("next stop %v, want an hour after the cut", at)
	}
	if at := nextStop(tasks, nil, since); !at.IsZero() {
		t.Errorf("next stop %v without stop-after, want none", at)
	}
}

func TestHuman(t *testing.T) {
	for d, want := range map[time.Duration]string{
		2*time.Hour + 13*time.Minute + 20*time.Second: "2h13m",
		90 * time.Second:       "1m30s",
		45 * time.Second:       "45s",
		200 * time.Millisecond: "0s",
		24 * time.Hour:         "24h",
	} {
		if got := human(d); got != want {
			t.Errorf("human(%s) = %q, want %q", d, got, want)
		}
	}
}

func t0() time.Time { return time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC) }

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// unusedManager fails the test if the agent calls it: these tests drive
// heard and tick by hand on a virtual clock.
type unusedManager struct{ t *testing.T }

func (m unusedManager) Register(context.Context, api.NodeRegistration) error {
	m.t.Error("Register called")
	return nil
}
func (m unusedManager) Assignments(context.Context, uint64, time.Duration) (*api.Assignments, error) {
	m.t.Error("Assignments called")
	return nil, context.Canceled
}
func (m unusedManager) ReportStatus(context.Context, api.StatusReport) error {
	m.t.Error("ReportStatus called")
	return nil
}
func (m unusedManager) SetAddrs([]string) {}

func newTimedAgent(t *testing.T, dir string, c *clock, rec *recorder) (*Agent, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	a, err := New(Config{NodeID: "n1", DataDir: dir, Manager: unusedManager{t}, Executor: rec, Network: rec,
		Registration: func() api.NodeRegistration { return api.NodeRegistration{} }, Logger: zap.New(core),
		Heartbeat: 2 * time.Second, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return a, logs
}

func logged(logs *observer.ObservedLogs, substr string) []string {
	var out []string
	for _, e := range logs.All() {
		if strings.Contains(e.Message, substr) {
			out = append(out, e.Message)
		}
	}
	return out
}

// A cut, on a virtual clock: the node judges itself cut off after three
// silent heartbeats, stops the task whose stop-after the cut outlasts (and
// only it, and once), keeps counting the cut across a reboot, and on its
// return logs one line with what the sync did, one per task stopped, and
// exports the figures.
func TestCutStopAfterAndReconnect(t *testing.T) {
	dir := t.TempDir()
	c := &clock{now: t0()}
	rec := &recorder{}
	a, _ := newTimedAgent(t, dir, c, rec)
	as := &api.Assignments{Index: 5, NodeID: "n1",
		Tasks:     []api.Task{task("once1", "once", api.TaskRunning), task("web1", "web", api.TaskRunning)},
		StopAfter: map[string]api.Duration{"once": api.Duration(time.Hour)}}
	if err := a.accept(as); err != nil {
		t.Fatal(err)
	}
	a.heard()
	a.Close()

	// Cut off at t0, and rebooted 30 minutes later: the cut counts from t0.
	c.set(t0().Add(30 * time.Minute))
	a, logs := newTimedAgent(t, dir, c, rec)
	defer a.Close()
	ctx := context.Background()
	if err := a.apply(ctx, a.Assignments()); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	a.applied = a.current
	a.mu.Unlock()
	if ts, _ := rec.lastTasks(); ts[0].DesiredState != api.TaskRunning {
		t.Fatalf("after the reboot: %+v, want every cached task started", ts)
	}
	a.tick()
	if got := a.Disconnect().Current; got != 30*time.Minute {
		t.Errorf("current cut %s after the reboot, want 30m (counted from the last answer before it)", got)
	}
	if n := len(logged(logs, "cut off from the managers: no answer for 30m")); n != 1 {
		t.Errorf("%d cut-off lines, want 1: %v", n, logs.All())
	}

	c.set(t0().Add(59 * time.Minute))
	a.tick()
	select {
	case <-a.latest:
		t.Fatal("re-applied before the stop-after")
	default:
	}
	c.set(t0().Add(time.Hour))
	a.tick()
	a.tick() // once only
	var re *api.Assignments
	select {
	case re = <-a.latest:
	default:
		t.Fatal("not re-applied when the stop-after came due")
	}
	if err := a.apply(ctx, re); err != nil {
		t.Fatal(err)
	}
	ts, _ := rec.lastTasks()
	if ts[0].ID != "once1" || ts[0].DesiredState != api.TaskShutdown || ts[1].DesiredState != api.TaskRunning {
		t.Fatalf("handed %+v, want once1 shut down and web1 running", ts)
	}
	if got := logged(logs, "stopping task once1 of service once: cut off from the managers for 1h, its disconnect stop-after is 1h"); len(got) != 1 {
		t.Errorf("stop lines %v, want one", logs.All())
	}
	a.mu.Lock()
	a.applied = re
	a.mu.Unlock()

	// Back after 2h13m: the managers stopped web1 (its replacement was
	// kept) and placed web2 here.
	back := t0().Add(2*time.Hour + 13*time.Minute)
	c.set(back)
	a.heard()
	// The managers have not heard of the stop yet: the task they still
	// list running stays stopped (it must not run twice).
	if err := a.apply(ctx, &api.Assignments{Index: 8, NodeID: "n1", Tasks: as.Tasks, StopAfter: as.StopAfter}); err != nil {
		t.Fatal(err)
	}
	if ts, _ := rec.lastTasks(); ts[0].ID != "once1" || ts[0].DesiredState != api.TaskShutdown {
		t.Fatalf("after the reconnect handed %+v, want once1 still shut down", ts)
	}
	if as.Tasks[0].DesiredState != api.TaskRunning {
		t.Fatal("the assignments themselves were changed")
	}
	kept := task("web1", "web", api.TaskShutdown)
	kept.StopReason = "reconcile keep-replacement: the slot keeps task web9 on node n2"
	next := &api.Assignments{Index: 9, NodeID: "n1", Tasks: []api.Task{task("once1", "once", api.TaskShutdown), kept, task("web2", "web", api.TaskRunning)}}
	a.received(a.Assignments(), next)
	if got := logged(logs, "stopping task web1 of service web: reconcile keep-replacement"); len(got) != 1 {
		t.Errorf("no stop line for web1 with its reason: %v", logs.All())
	}
	a.tick()
	if got := logged(logs, "reconnected to cluster"); len(got) != 0 {
		t.Fatalf("summed up before the settle window: %v", got)
	}
	c.set(back.Add(settleAfter * 2 * time.Second))
	a.tick()
	want := "reconnected to cluster after 2h13m, state synced (0 tasks kept, 1 stopped, 1 updated)"
	if got := logged(logs, "reconnected to cluster"); !reflect.DeepEqual(got, []string{want}) {
		t.Errorf("reconnect lines %q, want %q", got, want)
	}
	st := a.Disconnect()
	if st.Current != 0 || st.Last != 2*time.Hour+13*time.Minute || st.Outcomes[OutcomeStopped] != 1 || st.Outcomes[OutcomeUpdated] != 1 {
		t.Errorf("stats %+v", st)
	}
	lintMetrics(t, a)
}

// lintMetrics checks the exposition with promtool when it is installed
// (CI has it) and the values by name in any case.
func lintMetrics(t *testing.T, a *Agent) {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(a))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	text := b.String()
	for _, line := range []string{
		`warren_node_disconnected_seconds{period="last"} 7980`,
		`warren_node_disconnected_seconds{period="current"} 0`,
		`warren_node_reconciliations_total{outcome="stopped"} 1`,
		`warren_node_reconciliations_total{outcome="kept"} 0`,
	} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("metrics lack %q:\n%s", line, text)
		}
	}
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed; lint skipped")
		return
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s\n%s", err, out, text)
	}
}

// stallManager stalls the first heartbeat until its context ends, as a
// request whose segments a lossy link keeps dropping does, and counts the
// others.
type stallManager struct {
	unusedManager
	mu      sync.Mutex
	beats   int
	stalled chan struct{}
}

func (m *stallManager) Register(ctx context.Context, _ api.NodeRegistration) error {
	m.mu.Lock()
	m.beats++
	first := m.beats == 1
	m.mu.Unlock()
	if first {
		close(m.stalled)
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (m *stallManager) Assignments(ctx context.Context, _ uint64, _ time.Duration) (*api.Assignments, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// A stalled heartbeat does not hold back the next ones: the managers keep
// hearing the node (it would be marked down after the grace otherwise).
func TestHeartbeatsDoNotWaitForAStalledOne(t *testing.T) {
	m := &stallManager{unusedManager: unusedManager{t}, stalled: make(chan struct{})}
	rec := &recorder{}
	a, err := New(Config{NodeID: "n1", DataDir: t.TempDir(), Manager: m, Executor: rec, Network: rec,
		Registration: func() api.NodeRegistration { return api.NodeRegistration{} },
		Heartbeat:    10 * time.Millisecond, Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.heartbeatLoop(ctx); close(done) }()
	<-m.stalled
	deadline := time.After(20 * time.Second)
	for {
		m.mu.Lock()
		n := m.beats
		m.mu.Unlock()
		if n >= 4 {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("%d heartbeats while the first stalls, want more", n)
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	<-done
	if a.Disconnect().Current != 0 {
		t.Error("the node counts itself cut off while heartbeats get through")
	}
}

// Back from a cut, the node reports again the tasks the managers list as
// unknown, even when nothing changed on the node (no report was pending).
func TestUnknownTasksReportedAgain(t *testing.T) {
	c := &clock{now: t0()}
	a, _ := newTimedAgent(t, t.TempDir(), c, &recorder{})
	defer a.Close()
	st := api.TaskStatus{State: api.TaskRunning, PID: 42, Timestamp: t0()}
	a.Report("t1", st)
	a.Report("t2", st)
	a.ack(map[string]api.TaskStatus{"t1": st, "t2": st})
	lost := task("t1", "web", api.TaskRunning)
	lost.Status.State = api.TaskUnknown
	fine := task("t2", "web", api.TaskRunning)
	fine.Status = st
	a.received(nil, &api.Assignments{Index: 9, Tasks: []api.Task{lost, fine}})
	a.mu.Lock()
	defer a.mu.Unlock()
	if got, ok := a.pending["t1"]; !ok || got.PID != 42 {
		t.Errorf("t1 not reported again: pending %+v", a.pending)
	}
	if _, ok := a.pending["t2"]; ok {
		t.Error("t2 reported again though the managers know it")
	}
}
