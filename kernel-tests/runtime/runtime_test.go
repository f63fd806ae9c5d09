//go:build linux

package runtimetest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/testutil"
	"github.com/warrenhq/warren/kernel-tests/ktest"
	wrt "github.com/warrenhq/warren/runtime"
	ctrd "github.com/warrenhq/warren/runtime/containerd"
	"github.com/warrenhq/warren/runtime/ociimage"
)

const demoRef = "warren/demo:v1"

// demoPort is what the demo tasks listen on. Not 80 or 8080: an eBPF
// socket-LB program attached to the root v2 cgroup by a Warren node running
// on the same machine rewrites connects to its published ports, even to
// 127.0.0.1 inside our containers (seen here: exec health checks reached
// another cluster's backend).
const demoPort = 18931

// fixture is one containerd, one test network and the demo image.
type fixture struct {
	t       *testing.T
	ctd     *ktest.Containerd
	net     *testNet
	dataDir string
	parent  string
	ns      string
	cgroup2 string // where cgroup2 is mounted (pure v2 or hybrid host)
}

func newFixture(t *testing.T) *fixture {
	ktest.Root(t)
	cgroup2 := ktest.Cgroup2(t)
	goBin := ktest.Binary(t, "go")
	f := &fixture{
		t:       t,
		ctd:     ktest.StartContainerd(t, ktest.ContainerdOptions{Tag: "rt"}),
		net:     newTestNet(t),
		dataDir: t.TempDir(),
		parent:  fmt.Sprintf("warren-kt%d", os.Getpid()),
		ns:      fmt.Sprintf("warren-kt%d", os.Getpid()),
		cgroup2: cgroup2,
	}
	t.Cleanup(func() {
		for _, root := range []string{f.cgroup2, "/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/pids"} {
			dirs, _ := filepath.Glob(filepath.Join(root, f.parent, "*"))
			for _, d := range dirs {
				if fi, err := os.Stat(d); err == nil && fi.IsDir() {
					_ = os.Remove(d)
				}
			}
			_ = os.Remove(filepath.Join(root, f.parent))
		}
	})

	// Build the demo server statically and pack it, as `make demo-image` does.
	bin := filepath.Join(t.TempDir(), "demo-server")
	cmd := exec.Command(goBin, "build", "-o", bin, "github.com/warrenhq/warren/cmd/demo-server")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build demo-server: %v\n%s", err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	if err := ociimage.PackBinary(&archive, demoRef, b, ociimage.ImageConfig{ExposedPorts: []string{"80/tcp"}}); err != nil {
		t.Fatal(err)
	}
	ex := f.executor()
	names, err := ex.ImportArchive(context.Background(), &archive)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names, "docker.io/warren/demo:v1") {
		t.Fatalf("import gave %v", names)
	}
	return f
}

func (f *fixture) executor() *ctrd.Executor {
	ex, err := ctrd.New(ctrd.Options{
		Address: f.ctd.Socket, Namespace: f.ns, CgroupParent: f.parent,
		NodeID: "node-kt", Network: f.net, DisablePull: true, Logger: zaptest.NewLogger(f.t),
	})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { ex.Close() })
	return ex
}

func (f *fixture) worker(ex *ctrd.Executor) *wrt.Worker {
	w, err := wrt.NewWorker(wrt.WorkerOptions{
		Executor: ex, DataDir: f.dataDir, Logger: zaptest.NewLogger(f.t),
		HouseKeeping: 500 * time.Millisecond,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	f.t.Cleanup(func() { cancel(); <-done })
	return w
}

func demoTask(id string, hc *api.HealthCheck) api.Task {
	return api.Task{
		ID: id, ServiceID: "svc-web", ServiceName: "web", NodeID: "node-kt", Slot: 1, Version: "v1",
		DesiredState: api.TaskRunning,
		Spec: api.TaskSpec{
			Container: api.ContainerSpec{Image: demoRef, Env: []string{fmt.Sprintf("PORT=%d", demoPort), "WARREN_DEMO_VERSION=v1"}},
			Resources: api.ResourceReqs{Limits: api.Resources{NanoCPUs: 500_000_000, MemoryBytes: 64 << 20, Pids: 64}},
			Restart:   api.RestartPolicy{Condition: api.RestartAny, Delay: api.Duration(100 * time.Millisecond)},
			Health:    hc,
		},
	}
}

// waitFor polls the worker's status of id until ok accepts it.
func waitFor(t *testing.T, w *wrt.Worker, id string, within time.Duration, what string, ok func(api.TaskStatus) bool) api.TaskStatus {
	t.Helper()
	var st api.TaskStatus
	testutil.Eventually(t, "task "+id+": "+what, within, func() error {
		if st = w.Tasks()[id]; !ok(st) {
			return fmt.Errorf("last status %+v", st)
		}
		return nil
	})
	return st
}

type demoReply struct{ Hostname, Version, Client string }

func get(addr string) (demoReply, error) {
	var r demoReply
	c := http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(fmt.Sprintf("http://%s:%d/?format=json", addr, demoPort))
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	return r, json.NewDecoder(resp.Body).Decode(&r)
}

func TestRuntime(t *testing.T) {
	f := newFixture(t)
	ex := f.executor()
	w := f.worker(ex)
	ctx := context.Background()

	probe := func(kind api.HealthCheckKind, port uint16) *api.HealthCheck {
		return &api.HealthCheck{Kind: kind, Path: "/healthz", Port: port, Command: []string{"/app", "healthcheck"},
			Interval: api.Duration(200 * time.Millisecond), Timeout: api.Duration(time.Second), Retries: 2}
	}
	tasks := []api.Task{
		demoTask("kt-http", probe(api.HealthHTTP, demoPort)),
		demoTask("kt-exec", probe(api.HealthExec, 0)),
		demoTask("kt-tcp", probe(api.HealthTCP, demoPort)),
		demoTask("kt-tcpbad", probe(api.HealthTCP, 9)),
	}
	if err := w.Set(ctx, tasks); err != nil {
		t.Fatal(err)
	}
	status := map[string]api.TaskStatus{}
	for _, tk := range tasks {
		status[tk.ID] = waitFor(t, w, tk.ID, 30*time.Second, "running with an address", func(s api.TaskStatus) bool {
			return s.State == api.TaskRunning && s.Addr != "" && s.PID > 0
		})
	}

	t.Run("tasks answer HTTP on their address", func(t *testing.T) {
		for _, id := range []string{"kt-http", "kt-exec", "kt-tcp"} {
			var r demoReply
			testutil.Eventually(t, id+" at "+status[id].Addr+" answers", 10*time.Second, func() (err error) {
				r, err = get(status[id].Addr)
				return err
			})
			if r.Hostname != id || r.Version != "v1" || !strings.HasPrefix(r.Client, f.net.gateway.String()+":") {
				t.Fatalf("%s answered %+v", id, r)
			}
		}
	})

	t.Run("health checks", func(t *testing.T) {
		for _, id := range []string{"kt-http", "kt-exec", "kt-tcp"} {
			waitFor(t, w, id, 15*time.Second, "healthy", func(s api.TaskStatus) bool { return s.Health == api.HealthHealthy })
		}
		waitFor(t, w, "kt-tcpbad", 15*time.Second, "unhealthy (nothing listens on port 9)", func(s api.TaskStatus) bool { return s.Health == api.HealthUnhealthy })
		// Make two tasks fail their checks from inside, as an operator's exec would.
		for _, id := range []string{"kt-http", "kt-exec"} {
			execIn(t, ex, id, "/app", "touch", "/tmp/unhealthy")
		}
		for _, id := range []string{"kt-http", "kt-exec"} {
			st := waitFor(t, w, id, 15*time.Second, "unhealthy", func(s api.TaskStatus) bool { return s.Health == api.HealthUnhealthy })
			if st.State != api.TaskRunning || st.PID != status[id].PID {
				t.Fatalf("%s: unhealthy task must keep running in place, got %+v", id, st)
			}
		}
		if s := w.Tasks()["kt-tcp"]; s.Health != api.HealthHealthy {
			t.Fatalf("kt-tcp: %+v", s)
		}
		execIn(t, ex, "kt-http", "/app", "rm", "/tmp/unhealthy")
		waitFor(t, w, "kt-http", 15*time.Second, "healthy again", func(s api.TaskStatus) bool { return s.Health == api.HealthHealthy })
	})

	t.Run("cgroup limits and v2 placement", func(t *testing.T) {
		id := "kt-tcp"
		cg := wrt.CgroupPath(f.parent, id)
		want := map[string]string{
			"/sys/fs/cgroup/memory" + cg + "/memory.limit_in_bytes": strconv.Itoa(64 << 20),
			"/sys/fs/cgroup/cpu" + cg + "/cpu.cfs_quota_us":         "50000",
			"/sys/fs/cgroup/cpu" + cg + "/cpu.cfs_period_us":        "100000",
			"/sys/fs/cgroup/pids" + cg + "/pids.max":                "64",
		}
		if ktest.Cgroup2Unified(t) {
			// Pure v2: runc writes the limits into the one hierarchy.
			v2 := filepath.Join(f.cgroup2, cg)
			want = map[string]string{
				v2 + "/memory.max": strconv.Itoa(64 << 20),
				v2 + "/cpu.max":    "50000 100000",
				v2 + "/pids.max":   "64",
			}
		}
		for p, v := range want {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(b)); got != v {
				t.Errorf("%s = %s, want %s", p, got, v)
			}
		}
		pid := status[id].PID
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "\n0::"+cg+"\n") && !strings.HasPrefix(string(b), "0::"+cg+"\n") {
			t.Fatalf("pid %d not in v2 cgroup %s:\n%s", pid, cg, b)
		}
		if got, want := w.CgroupV2Path(), filepath.Join(f.cgroup2, f.parent); got != want {
			t.Fatalf("CgroupV2Path %q, want %q", got, want)
		}
		procs, err := os.ReadFile(filepath.Join(ex.TaskCgroupV2Path(id), "cgroup.procs"))
		if err != nil || !slices.Contains(strings.Fields(string(procs)), strconv.Itoa(pid)) {
			t.Fatalf("v2 cgroup.procs of %s: %q %v", id, procs, err)
		}
	})

	t.Run("kill -9 restarts in place and logs follow", func(t *testing.T) {
		id := "kt-tcp"
		lctx, cancel := context.WithCancel(ctx)
		defer cancel()
		rc, err := w.Logs(lctx, id, wrt.LogOptions{Follow: true})
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		lines := make(chan string, 100)
		go func() {
			sc := bufio.NewScanner(rc)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		expectLine := func(what string) {
			t.Helper()
			timeout := time.After(10 * time.Second)
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("log stream ended before %q", what)
					}
					if strings.Contains(l, what) {
						return
					}
				case <-timeout:
					t.Fatalf("log line %q not seen", what)
				}
			}
		}
		expectLine(fmt.Sprintf("demo-server v1 on %d", demoPort))

		old := status[id]
		killed := time.Now()
		if err := syscall.Kill(old.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		st := waitFor(t, w, id, 20*time.Second, "running again after kill -9", func(s api.TaskStatus) bool {
			return s.State == api.TaskRunning && s.PID != old.PID && s.PID > 0 && s.Restarts == 1
		})
		running := time.Since(killed)
		testutil.Eventually(t, "restarted task answers", 10*time.Second, func() error {
			_, err := get(st.Addr)
			return err
		})
		t.Logf("restart after kill -9: running again %v after the kill, answering HTTP %v after (policy delay 100ms)", running, time.Since(killed))
		expectLine(fmt.Sprintf("demo-server v1 on %d", demoPort)) // the new process's start line, followed live
		status[id] = st
	})

	t.Run("metrics", func(t *testing.T) {
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(w.Collector())
		n, err := promtest.GatherAndCount(reg, "warren_task_cpu_seconds_total", "warren_task_memory_bytes", "warren_task_restarts_total")
		if err != nil {
			t.Fatal(err)
		}
		if n != 3*len(tasks) {
			t.Fatalf("%d samples, want %d", n, 3*len(tasks))
		}
		if v := promtest.ToFloat64(restartsOf(t, reg, "kt-tcp")); v != 1 {
			t.Fatalf("restarts of kt-tcp = %v", v)
		}
	})

	t.Run("containerd restart: tasks keep running and stay supervised", func(t *testing.T) {
		before := w.Tasks()
		f.ctd.Restart(t)
		// Supervision is restored: a process killed after the restart is
		// restarted, which needs a working exit subscription.
		old := before["kt-exec"]
		testutil.Eventually(t, "kt-exec restarted after containerd restart", 20*time.Second, func() error {
			_ = syscall.Kill(old.PID, syscall.SIGKILL)
			st := w.Tasks()["kt-exec"]
			if st.State != api.TaskRunning || st.PID == old.PID || st.PID <= 0 {
				return fmt.Errorf("status %+v", st)
			}
			if st.Restarts != old.Restarts+1 {
				return testutil.Stop(fmt.Errorf("kt-exec restarts %d, want %d", st.Restarts, old.Restarts+1))
			}
			return nil
		})
		for _, id := range []string{"kt-http", "kt-tcp", "kt-tcpbad"} {
			st := w.Tasks()[id]
			if st.State != api.TaskRunning || st.PID != before[id].PID || st.Restarts != before[id].Restarts {
				t.Fatalf("%s after containerd restart: %+v, before %+v", id, st, before[id])
			}
		}
	})

	t.Run("a new worker adopts running containers", func(t *testing.T) {
		before := w.Tasks()
		w.Close()
		ex2 := f.executor()
		w2 := f.worker(ex2)
		if err := w2.Set(ctx, tasks); err != nil {
			t.Fatal(err)
		}
		for _, tk := range tasks {
			st := waitFor(t, w2, tk.ID, 15*time.Second, "running (adopted)", func(s api.TaskStatus) bool { return s.State == api.TaskRunning })
			if st.PID != before[tk.ID].PID || st.Addr != before[tk.ID].Addr {
				t.Fatalf("%s: adopted pid/addr %d/%s, before %d/%s", tk.ID, st.PID, st.Addr, before[tk.ID].PID, before[tk.ID].Addr)
			}
			if st.Restarts != before[tk.ID].Restarts {
				t.Fatalf("%s: adopted with %d restarts, before %d", tk.ID, st.Restarts, before[tk.ID].Restarts)
			}
			if !strings.Contains(st.Message, "adopted") {
				t.Fatalf("%s: %+v", tk.ID, st)
			}
		}
		// The adopted task is still supervised: kill it and it comes back.
		old := w2.Tasks()["kt-http"]
		_ = syscall.Kill(old.PID, syscall.SIGKILL)
		waitFor(t, w2, "kt-http", 20*time.Second, "restarted by the new worker", func(s api.TaskStatus) bool {
			return s.State == api.TaskRunning && s.PID != old.PID && s.PID > 0 && s.Restarts == old.Restarts+1
		})

		// An empty desired set stops and removes everything of this node.
		if err := w2.Set(ctx, nil); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, "no containers after Set(nil)", 30*time.Second, func() error {
			owned, err := ex2.List(ctx)
			if err != nil {
				return testutil.Stop(err)
			}
			if len(owned) != 0 {
				return fmt.Errorf("containers left: %+v", owned)
			}
			return nil
		})
		for _, tk := range tasks {
			if _, err := os.Stat(ex2.TaskCgroupV2Path(tk.ID)); err == nil {
				t.Errorf("v2 cgroup of %s left behind", tk.ID)
			}
		}
	})
}

func restartsOf(t *testing.T, reg *prometheus.Registry, task string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "warren_task_restarts_total" {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "task" && l.GetValue() == task {
					g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
					g.Set(m.GetCounter().GetValue())
					return g
				}
			}
		}
	}
	t.Fatalf("no restarts sample for %s", task)
	return nil
}

// execIn runs a command inside a task's container through containerd and
// fails the test unless it exits 0.
func execIn(t *testing.T, ex *ctrd.Executor, id string, args ...string) {
	t.Helper()
	if code := execCode(t, ex, id, args...); code != 0 {
		t.Fatalf("exec %v in %s: exit code %d", args, id, code)
	}
}

// execCode runs a command inside a task's container and returns its exit code.
func execCode(t *testing.T, ex *ctrd.Executor, id string, args ...string) int {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), ex.Namespace())
	c, err := ex.Client().LoadContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := c.Task(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := c.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := *spec.Process
	p.Args = args
	proc, err := tk.Exec(ctx, fmt.Sprintf("test-%d", time.Now().UnixNano()), &p, nullIO)
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Delete(ctx)
	ch, err := proc.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case es := <-ch:
		code, _, err := es.Result()
		if err != nil {
			t.Fatalf("exec %v in %s: %v", args, id, err)
		}
		return int(code)
	case <-time.After(10 * time.Second):
		t.Fatalf("exec %v in %s: timeout", args, id)
	}
	return -1
}
