package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/testutil"
)

// fakeManager serves the three agent routes. While down it drops every
// connection, which the client sees as an unreachable manager.
type fakeManager struct {
	srv *httptest.Server

	mu       sync.Mutex
	down     bool
	assign   api.Assignments
	changed  chan struct{}
	reports  []api.StatusReport
	register []api.NodeRegistration
	queries  []uint64 // the index of every assignments query, in order
}

func newFakeManager(t *testing.T, a api.Assignments) *fakeManager {
	f := &fakeManager{assign: a, changed: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/agent/register", func(w http.ResponseWriter, r *http.Request) {
		var reg api.NodeRegistration
		_ = json.NewDecoder(r.Body).Decode(&reg)
		f.mu.Lock()
		f.register = append(f.register, reg)
		f.mu.Unlock()
		w.Write([]byte("{}"))
	})
	mux.HandleFunc("GET /v1/agent/assignments", func(w http.ResponseWriter, r *http.Request) {
		after, _ := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
		wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
		f.mu.Lock()
		f.queries = append(f.queries, after)
		a, ch := f.assign, f.changed
		f.mu.Unlock()
		if a.Index <= after {
			t := time.NewTimer(wait)
			select {
			case <-ch:
			case <-t.C:
			case <-r.Context().Done():
			}
			t.Stop()
			f.mu.Lock()
			a = f.assign
			f.mu.Unlock()
		}
		json.NewEncoder(w).Encode(a)
	})
	mux.HandleFunc("POST /v1/agent/status", func(w http.ResponseWriter, r *http.Request) {
		var rep api.StatusReport
		_ = json.NewDecoder(r.Body).Decode(&rep)
		f.mu.Lock()
		f.reports = append(f.reports, rep)
		f.mu.Unlock()
		w.Write([]byte("{}"))
	})
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		down := f.down
		f.mu.Unlock()
		if down {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		mux.ServeHTTP(w, r)
	}))
	f.srv.EnableHTTP2 = false
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeManager) addr() string { return f.srv.Listener.Addr().String() }

func (f *fakeManager) setDown(d bool) {
	f.mu.Lock()
	f.down = d
	f.mu.Unlock()
	f.srv.CloseClientConnections()
}

func (f *fakeManager) publish(a api.Assignments) {
	f.mu.Lock()
	f.assign = a
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeManager) delivered(taskID string) (api.TaskStatus, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.reports) - 1; i >= 0; i-- {
		if st, ok := f.reports[i].Tasks[taskID]; ok {
			return st, true
		}
	}
	return api.TaskStatus{}, false
}

// recorder is both Executor and Network; it remembers every call.
type recorder struct {
	mu    sync.Mutex
	sets  [][]api.Task
	nets  []uint64
	fails int // fail this many Set calls first
}

func (r *recorder) Set(_ context.Context, tasks []api.Task) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fails > 0 {
		r.fails--
		return context.DeadlineExceeded
	}
	r.sets = append(r.sets, slices.Clone(tasks))
	return nil
}

func (r *recorder) SetNetwork(_ context.Context, a *api.Assignments) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nets = append(r.nets, a.Index)
	return nil
}

func (r *recorder) lastTasks() ([]api.Task, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.sets) == 0 {
		return nil, false
	}
	return r.sets[len(r.sets)-1], true
}

func newClient(t *testing.T, f *fakeManager, addrs ...string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Addrs: addrs, Transport: f.srv.Client().Transport.(*http.Transport).Clone(), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type running struct {
	a    *Agent
	stop func()
}

func start(t *testing.T, dir string, m Manager, rec *recorder, seed []string) *running {
	t.Helper()
	a, err := New(Config{
		NodeID: "n1", DataDir: dir, Manager: m, Managers: seed, Executor: rec, Network: rec,
		Registration: func() api.NodeRegistration { return api.NodeRegistration{Hostname: "edge-1"} },
		Heartbeat:    20 * time.Millisecond, Wait: 200 * time.Millisecond,
		RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		a.Run(ctx)
		close(done)
	}()
	r := &running{a: a}
	r.stop = func() {
		cancel()
		<-done
		a.Close()
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			r.stop()
		}
	})
	return r
}

func assignments(index uint64, managers []string, taskIDs ...string) api.Assignments {
	a := api.Assignments{Index: index, NodeID: "n1", Managers: managers}
	for _, id := range taskIDs {
		a.Tasks = append(a.Tasks, api.Task{ID: id, NodeID: "n1", DesiredState: api.TaskRunning})
	}
	return a
}

func taskIDs(ts []api.Task) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.ID)
	}
	return out
}

// A node rebooted while cut off from every manager brings its tasks back
// from the cache, before any manager answers.
func TestCachedAssignmentsAppliedWhileCutOff(t *testing.T) {
	dir := t.TempDir()
	f := newFakeManager(t, assignments(7, nil, "t1", "t2"))
	f.assign.Managers = []string{f.addr()}

	rec := &recorder{}
	r := start(t, dir, newClient(t, f, f.addr()), rec, nil)
	testutil.Eventually(t, "the assignments from the manager are applied", 15*time.Second, func() bool {
		ts, ok := rec.lastTasks()
		return ok && slices.Equal(taskIDs(ts), []string{"t1", "t2"})
	})
	r.stop()

	f.setDown(true)
	rec2 := &recorder{}
	r2 := start(t, dir, newClient(t, f, f.addr()), rec2, nil)
	testutil.Eventually(t, "the cached assignments are applied with the manager down", 15*time.Second, func() bool {
		ts, ok := rec2.lastTasks()
		return ok && slices.Equal(taskIDs(ts), []string{"t1", "t2"})
	})
	if got := r2.a.Applied(); got == nil || got.Index != 7 {
		t.Fatalf("applied = %+v, want the cached index 7", got)
	}
	rec2.mu.Lock()
	nets := slices.Clone(rec2.nets)
	rec2.mu.Unlock()
	if len(nets) == 0 || nets[0] != 7 {
		t.Fatalf("network got %v, want the cached assignments (index 7) first", nets)
	}
}

// Reports made while no manager is reachable are kept (across a restart)
// and delivered, latest per task, once one is back.
func TestReportsDeliveredAfterReconnect(t *testing.T) {
	dir := t.TempDir()
	f := newFakeManager(t, assignments(3, nil, "t1"))
	f.setDown(true)

	rec := &recorder{}
	r := start(t, dir, newClient(t, f, f.addr()), rec, nil)
	r.a.Report("t1", api.TaskStatus{State: api.TaskStarting})
	r.a.Report("t1", api.TaskStatus{State: api.TaskRunning, PID: 42})
	r.a.Report("t9", api.TaskStatus{State: api.TaskFailed, ExitCode: 3})
	r.stop()

	r2 := start(t, dir, newClient(t, f, f.addr()), &recorder{}, nil)
	f.setDown(false)
	testutil.Eventually(t, "both reports are delivered", 15*time.Second, func() bool {
		_, ok1 := f.delivered("t1")
		_, ok9 := f.delivered("t9")
		return ok1 && ok9
	})
	st, _ := f.delivered("t1")
	if st.State != api.TaskRunning || st.PID != 42 {
		t.Fatalf("t1 delivered as %+v, want the latest report (running, pid 42)", st)
	}
	f.mu.Lock()
	for _, rep := range f.reports {
		if rep.NodeID != "n1" {
			t.Errorf("report for node %q, want n1", rep.NodeID)
		}
		if s, ok := rep.Tasks["t1"]; ok && s.State == api.TaskStarting {
			t.Errorf("a superseded report (starting) was sent")
		}
	}
	f.mu.Unlock()
	testutil.Eventually(t, "delivered reports are forgotten", 15*time.Second, func() bool {
		r2.a.mu.Lock()
		defer r2.a.mu.Unlock()
		return len(r2.a.pending) == 0
	})
	r2.stop()
	c, err := openCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if left, _ := c.reports(); len(left) != 0 {
		t.Fatalf("acknowledged reports still cached: %v", left)
	}
}

// With the first manager gone the agent carries on with the second, and the
// manager list it learns is kept for the next start.
func TestFailoverToSecondManager(t *testing.T) {
	dir := t.TempDir()
	first := newFakeManager(t, assignments(5, nil, "old"))
	second := newFakeManager(t, assignments(9, nil, "t1"))
	managers := []string{first.addr(), second.addr()}
	second.assign.Managers = managers
	first.setDown(true)

	rec := &recorder{}
	r := start(t, dir, newClient(t, second, first.addr()), rec, managers)
	testutil.Eventually(t, "assignments come from the second manager", 15*time.Second, func() bool {
		ts, ok := rec.lastTasks()
		return ok && slices.Equal(taskIDs(ts), []string{"t1"})
	})
	testutil.Eventually(t, "the second manager gets heartbeats", 15*time.Second, func() bool {
		second.mu.Lock()
		defer second.mu.Unlock()
		return len(second.register) > 0 && second.register[0].NodeID == "n1"
	})
	second.publish(assignments(10, managers, "t1", "t2"))
	testutil.Eventually(t, "a change is followed", 15*time.Second, func() bool {
		ts, _ := rec.lastTasks()
		return slices.Equal(taskIDs(ts), []string{"t1", "t2"})
	})
	r.stop()

	c, err := openCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := c.managers()
	c.close()
	if !slices.Equal(got, managers) {
		t.Fatalf("persisted managers %v, want %v", got, managers)
	}
}

// A failing executor is retried until it takes the assignments.
func TestApplyRetriedAfterFailure(t *testing.T) {
	f := newFakeManager(t, assignments(2, nil, "t1"))
	rec := &recorder{fails: 2}
	start(t, t.TempDir(), newClient(t, f, f.addr()), rec, nil)
	testutil.Eventually(t, "the executor finally takes the tasks", 15*time.Second, func() bool {
		ts, ok := rec.lastTasks()
		return ok && slices.Equal(taskIDs(ts), []string{"t1"})
	})
}

// The service table's index reaches the managers as soon as the network
// applied it, not on the next heartbeat tick (an hour away here).
func TestTableIndexReportedOnApply(t *testing.T) {
	f := newFakeManager(t, assignments(3, nil))
	rec := &recorder{}
	a, err := New(Config{
		NodeID: "n1", DataDir: t.TempDir(), Manager: newClient(t, f, f.addr()), Executor: rec, Network: rec,
		Registration: func() api.NodeRegistration { return api.NodeRegistration{Hostname: "edge-1"} },
		Heartbeat:    time.Hour, Wait: 200 * time.Millisecond,
		RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; a.Close() }()

	reported := func(index uint64) func() bool {
		return func() bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			for _, r := range f.register {
				if r.TableIndex == index {
					return true
				}
			}
			return false
		}
	}
	testutil.Eventually(t, "index 3 is reported", 15*time.Second, reported(3))
	f.publish(assignments(9, nil, "t1"))
	testutil.Eventually(t, "index 9 is reported", 15*time.Second, reported(9))
	if a.TableIndex() != 9 {
		t.Fatalf("TableIndex %d, want 9", a.TableIndex())
	}
}

// tableNet fails SetNetwork (say, the mesh) but reports the service table
// it did apply.
type tableNet struct{ recorder }

func (n *tableNet) SetNetwork(ctx context.Context, a *api.Assignments) error {
	n.recorder.SetNetwork(ctx, a)
	return context.DeadlineExceeded
}
func (n *tableNet) TableIndex() uint64 { return 5 }

func TestTableIndexFromNetworkDespiteError(t *testing.T) {
	f := newFakeManager(t, assignments(8, nil))
	n := &tableNet{}
	a, err := New(Config{
		NodeID: "n1", DataDir: t.TempDir(), Manager: newClient(t, f, f.addr()), Executor: &recorder{}, Network: n,
		Registration: func() api.NodeRegistration { return api.NodeRegistration{} },
		Heartbeat:    time.Hour, Wait: 200 * time.Millisecond,
		RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; a.Close() }()
	testutil.Eventually(t, "the network's own table index is reported", 15*time.Second, func() bool { return a.TableIndex() == 5 })
}
