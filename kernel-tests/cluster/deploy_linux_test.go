//go:build linux

package clustertest

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
)

// loopResult is what a request loop saw: the version that answered each
// request ("" for a failed one) and the raw output for the failure report.
type loopResult struct {
	versions []string
	raw      string
}

func (r loopResult) failed() int {
	n := 0
	for _, v := range r.versions {
		if v == "" {
			n++
		}
	}
	return n
}

func (r loopResult) count(version string) int {
	n := 0
	for _, v := range r.versions {
		if v == version {
			n++
		}
	}
	return n
}

// requestLoop sends n requests to the VIP from h's node cgroup (where the
// socket load balancer translates it), each on a new connection, at most
// rate per second, and records which version answered each. One curl
// process sends them all, so the loop is fast enough for thousands.
func (h *host) requestLoop(vip string, n, rate int) loopResult {
	probe := filepath.Join(h.c.cg2, h.cgroup, "e2e-deploy-probe")
	if err := os.MkdirAll(probe, 0o755); err != nil {
		return loopResult{raw: err.Error()}
	}
	url := "http://" + net.JoinHostPort(vip, "80") + "/"
	args := fmt.Sprintf("-s --max-time 2 -H 'Connection: close' --rate %d/s -w '\\n@@%%{http_code} %%{exitcode}\\n'", rate)
	script := fmt.Sprintf("echo $$ > %s/cgroup.procs || exit 90\nexec curl %s $(for i in $(seq %d); do printf '%%s ' %s; done)", probe, args, n, url)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(n/rate+n/50+30)*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", "--net="+h.nsPath(), "--", "sh", "-c", script).CombinedOutput()
	res := loopResult{raw: string(out)}
	if err != nil && ctx.Err() != nil {
		res.raw = fmt.Sprintf("%v\n%s", err, out)
	}
	// Each answer is the body, then "@@CODE EXIT".
	parts := strings.Split(string(out), "@@")
	for i := 1; i < len(parts); i++ {
		status, _, _ := strings.Cut(parts[i], "\n")
		body := parts[i-1]
		if i > 1 {
			_, body, _ = strings.Cut(body, "\n")
		}
		v := ""
		if strings.HasPrefix(status, "200 0") {
			if r, err := parseDemo(body); err == nil {
				v = r.Version
			}
		}
		res.versions = append(res.versions, v)
	}
	for len(res.versions) < n {
		res.versions = append(res.versions, "")
	}
	return res
}

// background runs a request loop while the test does something else.
func (h *host) background(vip string, n, rate int) <-chan loopResult {
	ch := make(chan loopResult, 1)
	go func() { ch <- h.requestLoop(vip, n, rate) }()
	return ch
}

// timedCLI runs the CLI and returns how long it took and how long after the
// orchestrator's last write to the service (the converged status) it
// returned, so that "returns promptly" is a figure, not a hope.
func timedCLI(t *testing.T, h *host, args ...string) (string, error) {
	t.Helper()
	begin := time.Now()
	out, err := h.cli(args...)
	end := time.Now()
	name := ""
	for _, a := range args[2:] {
		if !strings.HasPrefix(a, "-") {
			name, _, _ = strings.Cut(a, "=")
			break
		}
	}
	lag := "?"
	if svc, serr := h.service(name); serr == nil {
		lag = end.Sub(svc.Meta.UpdatedAt).Round(time.Millisecond).String()
	}
	t.Logf("measured: warren %s: returned after %s, %s after the service's last status write (err %v)",
		strings.Join(args, " "), end.Sub(begin).Round(time.Millisecond), lag, err != nil)
	return out, err
}

func mustState(t *testing.T, h *host, name string, state api.UpdateState, msg string) api.Service {
	t.Helper()
	svc, err := h.service(name)
	if err != nil {
		t.Fatal(err)
	}
	if svc.Update == nil || svc.Update.State != state || !strings.Contains(svc.Update.Message, msg) {
		t.Fatalf("service %s: update %+v, want %s with %q", name, svc.Update, state, msg)
	}
	return svc
}

func noFailures(t *testing.T, what string, r loopResult) {
	t.Helper()
	t.Logf("measured: %s: %d requests, %d failed, versions v1=%d v2=%d v3=%d", what, len(r.versions), r.failed(), r.count("v1"), r.count("v2"), r.count("v3"))
	if r.failed() > 0 || len(r.versions) == 0 {
		t.Errorf("%s: %d of %d requests failed:\n%s", what, r.failed(), len(r.versions), tail(r.raw, 1500))
	}
}

// TestDeployments walks the PRD's Epic 3 on one node with a request loop
// running through every step: a rolling update to a version that fails its
// health check pauses (state and reason) and, with the rollback action,
// rolls back; a blue/green rollback within the keep window is a weight
// flip; a canary steps 10 → 50 → 100; and the CLI returns as soon as the
// service converged, after rollbacks and scales too.
func TestDeployments(t *testing.T) {
	h, vip := healthyWeb(t)
	var err error

	// 1. Rolling to a version whose check can never pass: paused, with the
	// reason, the old version serving throughout.
	loop := h.background(vip, 400, 40)
	_, err = timedCLI(t, h, "service", "update", "web", "--env", "WARREN_DEMO_VERSION=v2", "--health-tcp", "9", "--health-interval", "1s", "--health-retries", "2", "--timeout", "2m")
	if err == nil || !strings.Contains(err.Error(), "update paused") || strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("update to a failing version: want a prompt error naming the pause, got %v", err)
	}
	mustState(t, h, "web", api.UpdatePaused, "health")
	ps := h.mustCLI("service", "ps", "web")
	if !strings.Contains(ps, "update: paused") {
		t.Errorf("service ps does not show the pause:\n%s", ps)
	}
	t.Logf("service ps web while paused:\n%s", ps)
	noFailures(t, "rolling update to a failing version (pause)", <-loop)

	// The operator rolls back the stalled update: the CLI returns once
	// converged (it used to wait for --timeout), and so does a scale after it.
	if _, err := timedCLI(t, h, "service", "rollback", "web", "--timeout", "2m"); err != nil {
		t.Fatalf("rollback of a stalled update: %v", err)
	}
	mustState(t, h, "web", api.UpdateRolledBack, "operator")
	if _, err := timedCLI(t, h, "service", "scale", "web=4", "--timeout", "2m"); err != nil {
		t.Fatalf("scale after rollback: %v", err)
	}
	if _, err := timedCLI(t, h, "service", "scale", "web=3", "--timeout", "2m"); err != nil {
		t.Fatalf("scale down after rollback: %v", err)
	}
	// Scale down returned only once the removed task stopped.
	ts, err := h.tasks("web")
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range ts {
		if tk.DesiredState != api.TaskRunning && !tk.Status.State.Terminal() {
			t.Errorf("scale down returned while task %s is still %s", short(tk.ID), tk.Status.State)
		}
	}

	// 2. The same failing update with --update-failure-action rollback.
	loop = h.background(vip, 400, 40)
	_, err = timedCLI(t, h, "service", "update", "web", "--env", "WARREN_DEMO_VERSION=v2", "--health-tcp", "9", "--health-interval", "1s", "--health-retries", "2",
		"--update-failure-action", "rollback", "--timeout", "2m")
	if err == nil || !strings.Contains(err.Error(), "rolled back") || strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("update with the rollback action: want a prompt error naming the rollback, got %v", err)
	}
	mustState(t, h, "web", api.UpdateRolledBack, "rolled back: task")
	noFailures(t, "rolling update to a failing version (rollback action)", <-loop)

	// 3. Blue/green: promote, then roll back within the keep window.
	if _, err := timedCLI(t, h, "service", "update", "web", "--update-strategy", "blue-green", "--env", "WARREN_DEMO_VERSION=v2",
		"--bluegreen-keep", "5m", "--timeout", "2m"); err != nil {
		t.Fatalf("blue/green deploy: %v", err)
	}
	mustState(t, h, "web", api.UpdateAwaitingPromote, "")
	if r := h.requestLoop(vip, 200, 200); r.count("v1") != 200 {
		t.Errorf("before promote: %d of 200 answers from v1 (%d failed)", r.count("v1"), r.failed())
	}
	if _, err := timedCLI(t, h, "service", "promote", "web", "--timeout", "2m"); err != nil {
		t.Fatalf("promote: %v", err)
	}
	mustState(t, h, "web", api.UpdateCompleted, "kept")
	if r := h.requestLoop(vip, 200, 200); r.count("v2") != 200 {
		t.Errorf("after promote: %d of 200 answers from v2 (%d failed)", r.count("v2"), r.failed())
	}
	loop = h.background(vip, 600, 100)
	time.Sleep(time.Second)
	rolled := time.Now()
	if _, err := timedCLI(t, h, "service", "rollback", "web", "--timeout", "2m"); err != nil {
		t.Fatalf("rollback within the keep window: %v", err)
	}
	t.Logf("measured: blue/green rollback in the keep window: CLI done %s after the request", time.Since(rolled).Round(time.Millisecond))
	r := <-loop
	noFailures(t, "blue/green rollback within the keep window", r)
	// A flip: once the first v1 answer came, no v2 answer follows.
	first := -1
	for i, v := range r.versions {
		if v == "v1" && first < 0 {
			first = i
		}
		if first >= 0 && v == "v2" {
			t.Errorf("request %d answered by v2 after v1 answered request %d: not a flip", i, first)
			break
		}
	}
	if first < 0 {
		t.Errorf("no v1 answer after the rollback")
	}
	after := h.requestLoop(vip, 200, 200)
	if after.count("v1") != 200 {
		t.Errorf("after the rollback: %d of 200 answers from v1 (%d failed)", after.count("v1"), after.failed())
	}

	// 4. Canary 10 → 50 → 100, measured on 2,000 requests at each step;
	// canary analysis is on and must not mistake a healthy canary for a
	// broken one (TestCanaryAnalysis has the broken one).
	if _, err := timedCLI(t, h, "service", "update", "web", "--update-strategy", "canary", "--canary-weight", "10", "--env", "WARREN_DEMO_VERSION=v3",
		"--canary-max-error-rate", "1%", "--timeout", "2m"); err != nil {
		t.Fatalf("canary 10%%: %v", err)
	}
	before, err := h.service("web")
	if err != nil {
		t.Fatal(err)
	}
	ls := h.mustCLI("service", "ls")
	t.Logf("service ls during the canary:\n%s", ls)
	if !regexp.MustCompile(`3/3 \(v\d+: 1/1 canary 10%\)`).MatchString(ls) {
		t.Errorf("service ls does not show 3/3 (vN: 1/1 canary 10%%):\n%s", ls)
	}
	for _, w := range []int{10, 50} {
		if w != 10 {
			if _, err := timedCLI(t, h, "service", "update", "web", "--canary-weight", fmt.Sprint(w), "--timeout", "2m"); err != nil {
				t.Fatalf("canary %d%%: %v", w, err)
			}
		}
		now, err := h.service("web")
		if err != nil {
			t.Fatal(err)
		}
		if now.SpecVersion != before.SpecVersion {
			t.Errorf("canary step to %d%% made spec version %d (was %d)", w, now.SpecVersion, before.SpecVersion)
		}
		r := h.requestLoop(vip, 2000, 1000)
		noFailures(t, fmt.Sprintf("canary at %d%%", w), r)
		got := 100 * float64(r.count("v3")) / float64(len(r.versions))
		t.Logf("measured: canary at %d%%: %.2f%% of %d requests answered by the canary", w, got, len(r.versions))
		// ±2 % is the PRD's figure; the bound here is 3 standard deviations
		// of a fair per-connection draw (2.0 % at 50 %) so that the test
		// does not fail by chance.
		if sd := 100 * math.Sqrt(float64(w)/100*(1-float64(w)/100)/2000); math.Abs(got-float64(w)) > math.Max(2, 3*sd) {
			t.Errorf("canary at %d%%: %.2f%% of requests", w, got)
		}
	}
	loop = h.background(vip, 600, 100)
	if _, err := timedCLI(t, h, "service", "update", "web", "--canary-weight", "100", "--timeout", "2m"); err != nil {
		t.Fatalf("canary 100%%: %v", err)
	}
	noFailures(t, "canary promoted with --canary-weight 100", <-loop)
	full := h.requestLoop(vip, 2000, 1000)
	noFailures(t, "canary at 100%", full)
	if full.count("v3") != len(full.versions) {
		t.Errorf("at 100%%: %d of %d requests answered by the new version", full.count("v3"), len(full.versions))
	}
	mustState(t, h, "web", api.UpdateCompleted, "")
}

// TestDeployLeaderKilledMidRollout: the rollout's state lives in raft, so a
// leader killed in the middle of a slow rolling update is replaced and the
// new leader carries the rollout to its end.
func TestDeployLeaderKilledMidRollout(t *testing.T) {
	c := newCluster(t, 3)
	h1, h2, h3 := c.hosts[0], c.hosts[1], c.hosts[2]
	c.init(h1)
	token := strings.TrimSpace(h1.mustCLI("cluster", "join-token", "manager", "-q"))
	for _, h := range []*host{h2, h3} {
		c.join(h, h1, token)
	}
	eventually(t, "3 voting managers", 60*time.Second, func() error {
		var ci client.ClusterInfo
		if err := h1.cliJSON(&ci, "cluster", "info"); err != nil {
			return err
		}
		voters := 0
		for _, m := range ci.Managers {
			if m.Voter {
				voters++
			}
		}
		if voters != 3 {
			return fmt.Errorf("%d voters", voters)
		}
		return nil
	})
	// The leader runs no task: this test is about the rollout's state
	// surviving the leader, not about a node with tasks dying (node
	// liveness and the update monitor handle that).
	leaderID, _, err := leaderOf(h1)
	if err != nil || leaderID == "" {
		t.Fatalf("no leader: %q %v", leaderID, err)
	}
	h1.mustCLI("node", "update", "--availability", "drain", leaderID)
	deployWeb(t, h1, 3)
	c.waitRunning(h1, "web", 3, 90*time.Second, func(ts []api.Task) error {
		for _, tk := range ts {
			if tk.NodeID == leaderID {
				return fmt.Errorf("task %s on the drained leader", short(tk.ID))
			}
		}
		return nil
	})
	h1.mustCLI("service", "update", "web", "--env", "WARREN_DEMO_VERSION=v2", "--update-delay", "8s", "--update-order", "start-first", "--detach")
	// Wait for the first batch, then kill the leader.
	eventually(t, "the first task of the new spec runs", 90*time.Second, func() error {
		ts, err := h1.tasks("web")
		if err != nil {
			return err
		}
		for _, tk := range runningTasks(ts) {
			if tk.SpecVersion == 2 {
				return nil
			}
		}
		return fmt.Errorf("no new task yet:%s", describeTasks(ts))
	})
	if now, _, err := leaderOf(h1); err != nil || now != leaderID {
		t.Fatalf("the leader moved before the kill: %q (was %s) %v", now, short(leaderID), err)
	}
	old := c.hostOfNode(t, leaderID)
	var probe *host
	for _, h := range c.hosts {
		if h != old {
			probe = h
			break
		}
	}
	before, err := probe.service("web")
	if err != nil {
		t.Fatal(err)
	}
	if before.Update == nil || before.Update.State != api.UpdateUpdating {
		t.Fatalf("not mid-rollout when the leader dies: %+v", before.Update)
	}
	old.stop(syscall.SIGKILL)
	killed := time.Now()
	eventually(t, "the rollout completes under the new leader", 3*time.Minute, func() error {
		svc, err := probe.service("web")
		if err != nil {
			return err
		}
		if svc.Update == nil || svc.Update.State != api.UpdateCompleted {
			return fmt.Errorf("update %+v", svc.Update)
		}
		return nil
	})
	t.Logf("measured: leader %s killed mid-rollout -> rollout completed by the new leader: %s", short(leaderID), time.Since(killed).Round(time.Millisecond))
	svc, err := probe.service("web")
	if err != nil {
		t.Fatal(err)
	}
	if !svc.Update.StartedAt.Equal(before.Update.StartedAt) {
		t.Errorf("the new leader started a new rollout (%v) instead of resuming (%v)", svc.Update.StartedAt, before.Update.StartedAt)
	}
	// What runs is the new spec only.
	ts, err := probe.tasks("web")
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range runningTasks(ts) {
		if tk.SpecVersion != 2 {
			t.Errorf("task %s still runs spec version %d", short(tk.ID), tk.SpecVersion)
		}
	}
}

// healthyWeb starts a one-node cluster running web (3 health-checked
// replicas of the demo, published on 8080) and returns it once every task is
// healthy and its VIP answers; a failing test logs the service's tasks and
// spec.
func healthyWeb(t *testing.T) (*host, string) {
	t.Helper()
	c := newCluster(t, 1)
	h := c.hosts[0]
	c.init(h)
	h.mustCLI("image", "load", "-i", c.image)
	t.Cleanup(func() {
		if t.Failed() {
			out, err := h.cli("service", "ps", "web")
			t.Logf("service ps web: %v\n%s", err, out)
			out, err = h.cli("service", "inspect", "web")
			t.Logf("service inspect web: %v\n%s", err, out)
		}
	})
	health := []string{"--health-http", "/healthz", "--health-interval", "1s", "--health-timeout", "1s", "--health-retries", "2"}
	h.mustCLI(append([]string{"service", "create", "web", "--image", demoRef, "--replicas", "3", "--port", "8080:80", "--timeout", "2m"}, health...)...)
	c.waitRunning(h, "web", 3, time.Minute, func(ts []api.Task) error {
		for _, tk := range ts {
			if tk.Status.Health != api.HealthHealthy {
				return fmt.Errorf("task %s is %s", short(tk.ID), tk.Status.Health)
			}
		}
		return nil
	})
	svc, err := h.service("web")
	if err != nil {
		t.Fatal(err)
	}
	vip := svc.Endpoint.VIP
	eventually(t, "VIP answers", 30*time.Second, func() error {
		if r := h.requestLoop(vip, 20, 100); r.failed() > 0 {
			return fmt.Errorf("%d of 20 failed: %s", r.failed(), tail(r.raw, 500))
		}
		return nil
	})
	return h, vip
}
