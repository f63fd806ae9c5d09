//go:build linux

package clustertest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/kernel-tests/ktest"
)

// load sends a request every ~10 ms to each target from outside the
// cluster and, through the VIP, from inside a node's cgroup (where a task's
// connects are translated), each a new connection with a 2 s timeout, and
// counts what failed and how.
type load struct {
	mu     sync.Mutex
	ok     map[string]int
	failed map[string]int
	errs   map[string]int // first words of each error, for the report
	failAt []time.Time    // when each failed request began
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	vipOut string
	vipErr error
}

func startLoad(t *testing.T, outside *host, urls []string, vipHost *host, vipURL string) *load {
	t.Helper()
	l := &load{ok: map[string]int{}, failed: map[string]int{}, errs: map[string]int{}, stop: make(chan struct{})}
	// A step that fails half-way must not leave its load running into the
	// next one.
	t.Cleanup(l.halt)
	for _, u := range urls {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			get := getterIn(outside.nsPath())
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				begin := time.Now()
				err := get(u)
				l.count("outside→"+u, err, begin)
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	// The VIP loop is a shell in the node's cgroup: the socket load balancer
	// is attached there, as for a task's processes.
	probe := filepath.Join("/sys/fs/cgroup/unified", vipHost.cgroup, "drain-probe")
	if err := os.MkdirAll(probe, 0o755); err != nil {
		t.Fatalf("probe cgroup: %v", err)
	}
	stopFile := filepath.Join(vipHost.c.dir, "drain-stop")
	os.Remove(stopFile)
	script := fmt.Sprintf(`echo $$ > %s/cgroup.procs || exit 90
while [ ! -e %s ]; do
  t=$(date +%%s%%N)
  c=$(curl -s -o /dev/null -w '%%{http_code}' --max-time 2 %s); e=$?
  echo "$c $e $t"; sleep 0.01
done`, probe, stopFile, vipURL)
	cmd := exec.Command("nsenter", "--net="+vipHost.nsPath(), "--", "sh", "-c", script)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		<-l.stop
		os.WriteFile(stopFile, nil, 0o644)
		l.vipErr = cmd.Wait()
		l.vipOut = out.String()
		os.Remove(stopFile)
	}()
	return l
}

func getterIn(nsPath string) func(string) error {
	tr := &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var conn net.Conn
			err := ns.WithNetNSPath(nsPath, func(ns.NetNS) error {
				var err error
				conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		},
	}
	cl := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	return func(u string) error {
		resp, err := cl.Get(u)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %s", resp.Status)
		}
		return nil
	}
}

func (l *load) count(target string, err error, begin time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		l.ok[target]++
		return
	}
	l.failed[target]++
	l.failAt = append(l.failAt, begin)
	msg := err.Error()
	switch {
	case strings.Contains(msg, "connection refused"):
		msg = "connection refused"
	case strings.Contains(msg, "connection reset"):
		msg = "connection reset"
	case strings.Contains(msg, "Timeout") || strings.Contains(msg, "deadline"):
		msg = "timeout"
	case strings.Contains(msg, "EOF"):
		msg = "EOF"
	}
	l.errs[target+": "+msg]++
}

// finish stops the load and returns the totals and a one-line report.
func (l *load) halt() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
}

func (l *load) finish(t *testing.T) (ok, failed int, report string) {
	t.Helper()
	l.halt()
	if l.vipErr != nil {
		t.Fatalf("VIP loop: %v\n%s", l.vipErr, tail(l.vipOut, 2000))
	}
	for _, line := range strings.Split(l.vipOut, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		if f[0] == "200" && f[1] == "0" {
			l.ok["vip"]++
			continue
		}
		l.failed["vip"]++
		if ns, err := strconv.ParseInt(f[2], 10, 64); err == nil {
			l.failAt = append(l.failAt, time.Unix(0, ns))
		}
		what := "curl exit " + f[1]
		switch f[1] {
		case "7":
			what = "connection refused"
		case "28":
			what = "timeout"
		case "52", "56":
			what = "connection reset or empty reply"
		}
		l.errs["vip: "+what]++
	}
	var parts []string
	for _, k := range sortedKeys(l.ok, l.failed) {
		ok += l.ok[k]
		failed += l.failed[k]
		parts = append(parts, fmt.Sprintf("%s %d/%d", k, l.failed[k], l.ok[k]+l.failed[k]))
	}
	var errs []string
	for k, n := range l.errs {
		errs = append(errs, fmt.Sprintf("%s ×%d", k, n))
	}
	sort.Strings(errs)
	report = fmt.Sprintf("%d of %d requests failed (%s)", failed, ok+failed, strings.Join(parts, ", "))
	if len(errs) > 0 {
		report += "; " + strings.Join(errs, "; ")
	}
	return ok, failed, report
}

func sortedKeys(ms ...map[string]int) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range ms {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestZeroFailedRequests is issue 20's promise: on two nodes, with a
// client outside sending to the published port of each node and a loop
// through the VIP on the other node, removing tasks in every way the
// system does loses no request — each task leaves every node's table
// before it stops.
func TestZeroFailedRequests(t *testing.T) {
	ktest.Binary(t, "ctr")
	c := newCluster(t, 3)
	h1, h2, outside := c.hosts[0], c.hosts[1], c.hosts[2] // outside runs no warren
	c.init(h1)
	token := strings.TrimSpace(h1.mustCLI("cluster", "join-token", "worker", "-q"))
	c.join(h2, h1, token)
	h1.mustCLI("image", "load", "-i", c.image)
	health := []string{"--health-http", "/healthz", "--health-interval", "1s", "--health-timeout", "1s", "--health-retries", "1"}
	h1.mustCLI(append([]string{"service", "create", "web", "--image", demoRef, "--replicas", "4", "--port", "8080:80", "--timeout", "3m"}, health...)...)
	h1.mustCLI(append([]string{"service", "create", "api", "--image", demoRef, "--replicas", "2", "--port", "8081:80", "--timeout", "3m"}, health...)...)
	c.waitRunning(h1, "web", 4, 3*time.Minute, nil)
	c.waitRunning(h1, "api", 2, 3*time.Minute, nil)
	svc, err := h1.service("web")
	if err != nil {
		t.Fatal(err)
	}
	urls := []string{"http://" + h1.ip + ":8080/", "http://" + h2.ip + ":8080/"}
	vipURL := "http://" + net.JoinHostPort(svc.Endpoint.VIP, "80") + "/"
	// Everything answers before the clock starts.
	for _, u := range urls {
		eventually(t, "GET "+u, 30*time.Second, func() error { return getterIn(outside.nsPath())(u) })
	}
	h2ID := h2.nodeID(t)

	// do runs a CLI command of a step; on failure it shows where the
	// service stands, with every task's drain.
	// The CLI says on stderr when a change is in effect on every node;
	// those figures are collected for the closing note.
	var inEffect []time.Duration
	do := func(t *testing.T, args ...string) {
		t.Helper()
		cmd := exec.Command(h1.c.bin, append([]string{"--data-dir", h1.dataDir}, args...)...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		out := stdout.String() + stderr.String()
		for _, line := range strings.Split(stderr.String(), "\n") {
			if !strings.Contains(line, "in effect on every node") {
				continue
			}
			t.Logf("%s: %s", strings.Join(args, " "), line)
			if i := strings.LastIndex(line, " after "); i >= 0 && strings.HasPrefix(line, "change:") {
				if d, perr := time.ParseDuration(strings.TrimSpace(line[i+len(" after "):])); perr == nil {
					inEffect = append(inEffect, d)
				}
			}
		}
		if err == nil {
			return
		}
		ps, _ := h1.cli("service", "ps", "--all", "web")
		var lines []string
		if ts, terr := h1.tasks("web"); terr == nil {
			for _, tk := range ts {
				lines = append(lines, fmt.Sprintf("%s slot %d v%d %s desired %s health %s drain %+v msg %q", short(tk.ID), tk.Slot, tk.SpecVersion, tk.Status.State, tk.DesiredState, tk.Status.Health, tk.Drain, tk.Status.Message))
			}
		}
		svc, _ := h1.service("web")
		t.Fatalf("warren %s: %v\n%s\n%s\nupdate %+v\n%s", strings.Join(args, " "), err, out, ps, svc.Update, strings.Join(lines, "\n"))
	}
	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"rolling stop-first", func(t *testing.T) {
			do(t, "service", "update", "web", "--env", "REV=1", "--update-order", "stop-first", "--timeout", "3m")
		}},
		{"rolling start-first", func(t *testing.T) {
			do(t, "service", "update", "web", "--env", "REV=2", "--update-order", "start-first", "--timeout", "3m")
		}},
		{"rolling to a version failing its health check, then rollback", func(t *testing.T) {
			// Every new task is unhealthy (the demo reports unhealthy while
			// its file exists, and / always does): stop-first stops one
			// old task and the rollout waits on its successor.
			do(t, "service", "update", "web", "--env", "WARREN_DEMO_UNHEALTHY_FILE=/", "--update-order", "stop-first", "-d")
			eventually(t, "an unhealthy task of the failing version", 2*time.Minute, func() error {
				ts, err := h1.tasks("web")
				if err != nil {
					return err
				}
				for _, tk := range runningTasks(ts) {
					if tk.Status.Health == api.HealthUnhealthy && slices.Contains(tk.Spec.Container.Env, "WARREN_DEMO_UNHEALTHY_FILE=/") {
						return nil
					}
				}
				return fmt.Errorf("none yet: %s", describeTasks(ts))
			})
			time.Sleep(3 * time.Second)
			// The CLI's convergence check counts only tasks of the newest
			// spec version, and a rollback keeps the old tasks (current
			// again by their template): wait for the tasks instead.
			do(t, "service", "rollback", "web", "-d")
			c.waitRunning(h1, "web", 4, 2*time.Minute, func(ts []api.Task) error {
				for _, tk := range ts {
					if tk.Status.Health != api.HealthHealthy || slices.Contains(tk.Spec.Container.Env, "WARREN_DEMO_UNHEALTHY_FILE=/") {
						return fmt.Errorf("task %s: %s, env %v", short(tk.ID), tk.Status.Health, tk.Spec.Container.Env)
					}
				}
				return nil
			})
		}},
		{"blue-green promote", func(t *testing.T) {
			do(t, "service", "update", "web", "--env", "REV=3", "--update-strategy", "blue-green", "--timeout", "3m")
			do(t, "service", "promote", "web", "--timeout", "3m")
		}},
		{"blue-green rollback", func(t *testing.T) {
			do(t, "service", "update", "web", "--env", "REV=4", "--update-strategy", "blue-green", "--timeout", "3m")
			do(t, "service", "promote", "web", "-d")
			time.Sleep(5 * time.Second)
			do(t, "service", "rollback", "web", "--timeout", "3m")
		}},
		{"canary weight steps", func(t *testing.T) {
			do(t, "service", "update", "web", "--env", "REV=5", "--update-strategy", "canary", "--canary-weight", "10", "--timeout", "3m")
			do(t, "service", "update", "web", "--canary-weight", "50", "--timeout", "3m")
			// The CLI's convergence check counts only tasks of the latest
			// spec version, and the weight change made a new version of an
			// unchanged template: wait for the rollout itself instead.
			do(t, "service", "promote", "web", "-d")
			eventually(t, "canary promoted and completed", 3*time.Minute, func() error {
				svc, err := h1.service("web")
				if err != nil {
					return err
				}
				if svc.Update == nil || svc.Update.State != api.UpdateCompleted {
					return fmt.Errorf("rollout %+v", svc.Update)
				}
				ts, err := h1.tasks("web")
				if err != nil {
					return err
				}
				n := 0
				for _, tk := range runningTasks(ts) {
					if tk.Status.Health == api.HealthHealthy && slices.Contains(tk.Spec.Container.Env, "REV=5") {
						n++
					}
				}
				if n != 4 {
					return fmt.Errorf("%d of 4 tasks run REV=5 healthy: %s", n, describeTasks(ts))
				}
				return nil
			})
		}},
		{"scale 4 to 1 to 4", func(t *testing.T) {
			// -d and waitRunning: after the canary weight change the tasks
			// are of an older spec version than the service, which the
			// CLI's convergence check does not count.
			do(t, "service", "scale", "web=1", "-d")
			c.waitRunning(h1, "web", 1, 2*time.Minute, nil)
			time.Sleep(2 * time.Second)
			do(t, "service", "scale", "web=4", "-d")
			c.waitRunning(h1, "web", 4, 2*time.Minute, nil)
		}},
		{"node drain", func(t *testing.T) {
			do(t, "node", "update", "--availability", "drain", h2ID)
			eventually(t, "web off the drained node", 2*time.Minute, func() error {
				ts, err := h1.tasks("web")
				if err != nil {
					return err
				}
				for _, tk := range runningTasks(ts) {
					if tk.NodeID == h2ID {
						return fmt.Errorf("task %s still on %s", short(tk.ID), h2.name)
					}
				}
				return nil
			})
			c.waitRunning(h1, "web", 4, 2*time.Minute, nil)
			do(t, "node", "update", "--availability", "active", h2ID)
		}},
		{"service rm of a second service", func(t *testing.T) {
			do(t, "service", "rm", "api")
			eventually(t, "api's tasks gone", time.Minute, func() error {
				ts, err := h1.tasks("api")
				if err != nil {
					return nil // the service is gone
				}
				if len(runningTasks(ts)) > 0 {
					return fmt.Errorf("%d tasks of api still running", len(runningTasks(ts)))
				}
				return nil
			})
		}},
	}
	total, totalFailed := 0, 0
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			drops := noBackendDrops(h1) + noBackendDrops(h2)
			l := startLoad(t, outside, urls, h2, vipURL)
			time.Sleep(time.Second)
			begin := time.Now()
			st.run(t)
			time.Sleep(2 * time.Second)
			ok, failed, report := l.finish(t)
			if d := noBackendDrops(h1) + noBackendDrops(h2) - drops; d > 0 {
				report += fmt.Sprintf("; %g packets dropped for want of a backend", d)
			}
			for _, at := range l.failAt {
				report += fmt.Sprintf("; a failed request began %s into the step", at.Sub(begin).Round(time.Millisecond))
			}
			total += ok + failed
			totalFailed += failed
			t.Logf("%s: %s", st.name, report)
			if ok == 0 {
				t.Fatal("no request succeeded: the load never ran")
			}
			if failed > 0 {
				out, _ := h1.cli("service", "ps", "--all", "web")
				t.Errorf("%s: %s\n%s", st.name, report, out)
			}
		})
	}
	t.Logf("all steps: %d of %d requests failed", totalFailed, total)
	if len(inEffect) > 0 {
		sort.Slice(inEffect, func(i, j int) bool { return inEffect[i] < inEffect[j] })
		t.Logf("CLI: write → in effect on every node, %d changes: p50 %s, p99 %s, max %s", len(inEffect),
			inEffect[len(inEffect)/2], inEffect[(len(inEffect)*99)/100], inEffect[len(inEffect)-1])
	}

	// What a crash costs: no drain is possible; the table converges once the
	// node reports the exit.
	t.Run("crash", func(t *testing.T) {
		c.waitRunning(h1, "web", 4, 2*time.Minute, nil)
		// The node drain may have left every task on h1; the VIP loop runs
		// on the other host either way.
		victim, other := h2, h1
		pids := h2.runningPIDs(t)
		if len(pids) == 0 {
			victim, other = h1, h2
			pids = h1.runningPIDs(t)
		}
		if len(pids) == 0 {
			ts, _ := h1.tasks("web")
			t.Fatalf("no task running on either host: %s", describeTasks(ts))
		}
		l := startLoad(t, outside, urls, other, vipURL)
		time.Sleep(time.Second)
		killed := time.Now()
		if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		time.Sleep(4 * time.Second)
		_, _, report := l.finish(t)
		t.Logf("SIGKILL of one task on %s: %s", victim.name, report)
		if len(l.failAt) > 0 {
			sort.Slice(l.failAt, func(i, j int) bool { return l.failAt[i].Before(l.failAt[j]) })
			t.Logf("failed requests began between %s and %s after the kill",
				l.failAt[0].Sub(killed).Round(time.Millisecond), l.failAt[len(l.failAt)-1].Sub(killed).Round(time.Millisecond))
		}
	})

	metrics, err := h1.scrape()
	if err != nil {
		t.Fatal(err)
	}
	var q []string
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "warren_service_table_propagation_seconds") {
			f := strings.Fields(line)
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil && strings.Contains(line, "quantile") {
				q = append(q, fmt.Sprintf("%s=%.1fms", strings.TrimPrefix(f[0], "warren_service_table_propagation_seconds"), v*1000))
			} else {
				q = append(q, line)
			}
		}
	}
	if len(q) == 0 {
		t.Fatal("the leader exports no warren_service_table_propagation_seconds")
	}
	t.Logf("store change → applied on every ready node (leader's summary): %s", strings.Join(q, " "))
}

// noBackendDrops is the host's warren_dataplane_no_backend_drops_total
// over every service (0 when it cannot be read).
func noBackendDrops(h *host) float64 {
	text, err := h.scrape()
	if err != nil {
		return 0
	}
	return metricSum(text, "warren_dataplane_no_backend_drops_total")
}
