//go:build linux

package clustertest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// TestDaemonRestartKeepsTraffic is the README's one-node cluster (manager
// and worker in one process) whose daemon is killed with SIGKILL and started
// again after 3 s and after 20 s (both under the 30 s node grace), while
// requests run without pause through the published port from another host
// and through the service VIP from inside a task's network namespace and
// the node's cgroup, and lookups of the service name from the task ask the
// node's DNS server. Nothing may notice: no failed request or lookup, the same tasks
// with the same PIDs, no restart, no task orphaned or replaced.
func TestDaemonRestartKeepsTraffic(t *testing.T) {
	c := newCluster(t, 2)
	h, outside := c.hosts[0], c.hosts[1] // outside runs no warren
	c.init(h)
	deployWeb(t, h, 3)
	before := c.waitRunning(h, "web", 3, 2*time.Minute, nil)
	svc, err := h.service("web")
	if err != nil {
		t.Fatal(err)
	}
	vip := svc.Endpoint.VIP
	eventually(t, "published port answers from outside", 30*time.Second, func() error {
		_, err := httpGet(outside.nsPath(), "http://"+h.ip+":8080/")
		return err
	})

	pub := newRequestLoop(func() error {
		_, err := httpGet(outside.nsPath(), "http://"+h.ip+":8080/")
		return err
	})
	defer pub.stop()
	vipLoop := startTaskVIPLoop(t, h, before[0].Status.PID, vip)
	defer vipLoop.stop()
	nodes, err := h.nodes()
	if err != nil || len(nodes) != 1 {
		t.Fatalf("nodes: %v %v", nodes, err)
	}
	dnsLoop := startTaskDNSLoop(t, h, before[0].Status.PID, nodes[0].Status.Network.DNSAddr, "web.warren.local", vip)
	defer dnsLoop.stop()

	for _, down := range []time.Duration{3 * time.Second, 20 * time.Second} {
		pub0, vip0, dns0 := pub.counts(), vipLoop.counts(), dnsLoop.counts()
		h.stop(syscall.SIGKILL)
		time.Sleep(down)
		h.start(h.args...)
		c.waitReady(h, h, 90*time.Second)
		// Let the restarted daemon do whatever it does at start (apply the
		// cached assignments, hear from its manager, re-sync the dataplane,
		// report adopted tasks, probe their health) under the loops before
		// counting.
		time.Sleep(10 * time.Second)
		pub1, vip1, dns1 := pub.counts(), vipLoop.counts(), dnsLoop.counts()
		t.Logf("measured: daemon down %s: published port %d requests, %d failed; VIP from a task %d requests, %d failed; DNS from a task %d lookups, %d failed",
			down, pub1.total-pub0.total, pub1.failed-pub0.failed, vip1.total-vip0.total, vip1.failed-vip0.failed, dns1.total-dns0.total, dns1.failed-dns0.failed)
		if pub1.total == pub0.total || vip1.total == vip0.total || dns1.total == dns0.total {
			t.Errorf("down %s: a request loop made no requests (published %d, VIP %d, DNS %d)", down, pub1.total-pub0.total, vip1.total-vip0.total, dns1.total-dns0.total)
		}
		if n := dns1.failed - dns0.failed; n > 0 {
			t.Errorf("down %s: %d lookups of web.warren.local from a task failed; first: %s", down, n, dnsLoop.firstFailure(dns0.failed))
		}
		if n := pub1.failed - pub0.failed; n > 0 {
			t.Errorf("down %s: %d requests through the published port failed; first: %s", down, n, pub.firstFailure(pub0.failed))
		}
		if n := vip1.failed - vip0.failed; n > 0 {
			t.Errorf("down %s: %d requests through VIP %s from a task failed; first: %s", down, n, vip, vipLoop.firstFailure(vip0.failed))
		}

		all, err := h.tasks("web")
		if err != nil {
			t.Fatal(err)
		}
		after := runningTasks(all)
		if len(all) != len(before) || len(after) != len(before) {
			t.Fatalf("down %s: %d tasks (%d running), want the same %d:%s", down, len(all), len(after), len(before), describeTasks(all))
		}
		pids := map[string]int{}
		for _, tk := range before {
			pids[tk.ID] = tk.Status.PID
		}
		for _, tk := range after {
			if pid, ok := pids[tk.ID]; !ok || pid != tk.Status.PID || tk.Status.Restarts != 0 {
				t.Errorf("down %s: task %s pid %d restarts %d, want the same task with pid %d and 0 restarts", down, short(tk.ID), tk.Status.PID, tk.Status.Restarts, pid)
			}
		}
		nodes, err := h.nodes()
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) != 1 || nodes[0].Status.State != api.NodeReady {
			t.Errorf("down %s: node %+v, want the one node ready", down, nodes)
		}
	}

	// One log path for the node: no log process per task, and the logs
	// (collected before and after the restarts) read with --tail and
	// --timestamps.
	if n := taskLoggers(t); n > 0 {
		t.Errorf("%d per-task log processes running, want none", n)
	}
	logs := h.mustCLI("service", "logs", "--tail", "50", "--timestamps", "web")
	for _, tk := range before {
		found := false
		for _, line := range strings.Split(logs, "\n") {
			if !strings.Contains(line, "as "+short(tk.ID)) {
				continue
			}
			for _, f := range strings.Fields(line) {
				if _, err := time.Parse(time.RFC3339Nano, f); err == nil {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("service logs --timestamps has no timestamped start line of task %s:\n%s", short(tk.ID), tail(logs, 1500))
		}
	}
}

// taskLoggers counts processes running as the shim's task logger (the
// warren binary with the logger marker), the per-task log path this
// replaced.
func taskLoggers(t *testing.T) int {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), "--warren-task-logger") {
			n++
		}
	}
	return n
}

// loopCounts is how many requests a loop made and how many failed.
type loopCounts struct{ total, failed int }

// requestLoop calls f back to back (20 ms apart) until stop.
type requestLoop struct {
	mu       sync.Mutex
	c        loopCounts
	failures []string
	done     chan struct{}
	wg       sync.WaitGroup
}

func newRequestLoop(f func() error) *requestLoop {
	l := &requestLoop{done: make(chan struct{})}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for {
			select {
			case <-l.done:
				return
			default:
			}
			err := f()
			l.mu.Lock()
			l.c.total++
			if err != nil {
				l.c.failed++
				l.failures = append(l.failures, time.Now().Format("15:04:05.000")+" "+err.Error())
			}
			l.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return l
}

func (l *requestLoop) counts() loopCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c
}

func (l *requestLoop) firstFailure(from int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if from < len(l.failures) {
		return l.failures[from]
	}
	return "none"
}

func (l *requestLoop) stop() {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	l.wg.Wait()
}

// shellLoop is a request loop run by a shell inside a task's network
// namespace and a cgroup under the node's cgroup parent: where the eBPF
// socket load balancer translates the VIP for the node's containers. Each
// request writes one line, "ok" or "fail <time> <curl exit>".
type shellLoop struct {
	out, stopFile string
	cmd           *exec.Cmd
}

func startTaskVIPLoop(t *testing.T, h *host, taskPID int, vip string) *shellLoop {
	t.Helper()
	url := "http://" + net.JoinHostPort(vip, "80") + "/"
	return startTaskLoop(t, h, taskPID, "vip", "curl -s -o /dev/null --max-time 2 "+url)
}

// startTaskDNSLoop asks the node's DNS server (the task's nameserver) for
// name without pause; a lookup fails unless the answer is want.
func startTaskDNSLoop(t *testing.T, h *host, taskPID int, server, name, want string) *shellLoop {
	t.Helper()
	return startTaskLoop(t, h, taskPID, "dns", fmt.Sprintf(`[ "$(dig +short +time=1 +tries=1 @%s %s A)" = %s ]`, server, name, want))
}

// startTaskLoop runs check (a shell command) in a loop from the task's
// network namespace and a cgroup of the node.
func startTaskLoop(t *testing.T, h *host, taskPID int, name, check string) *shellLoop {
	t.Helper()
	probe := filepath.Join("/sys/fs/cgroup/unified", h.cgroup, name+"-probe")
	if err := os.MkdirAll(probe, 0o755); err != nil {
		t.Fatalf("probe cgroup: %v", err)
	}
	l := &shellLoop{out: filepath.Join(h.c.dir, name+"-loop.out"), stopFile: filepath.Join(h.c.dir, name+"-loop.stop")}
	script := fmt.Sprintf(`echo $$ > %s/cgroup.procs || exit 90
while [ ! -e %s ]; do
  if %s; then echo ok; else echo "fail $(date +%%T.%%N) $?"; fi
  sleep 0.02
done >> %s`, probe, l.stopFile, check, l.out)
	l.cmd = exec.Command("nsenter", fmt.Sprintf("--net=/proc/%d/ns/net", taskPID), "--", "sh", "-c", script)
	l.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := l.cmd.Start(); err != nil {
		t.Fatalf("start VIP loop: %v", err)
	}
	return l
}

func (l *shellLoop) lines() []string {
	b, _ := os.ReadFile(l.out)
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func (l *shellLoop) counts() loopCounts {
	var c loopCounts
	for _, line := range l.lines() {
		if line == "" {
			continue
		}
		c.total++
		if strings.HasPrefix(line, "fail") {
			c.failed++
		}
	}
	return c
}

func (l *shellLoop) firstFailure(from int) string {
	n := 0
	for _, line := range l.lines() {
		if strings.HasPrefix(line, "fail") {
			if n == from {
				return line
			}
			n++
		}
	}
	return "none"
}

func (l *shellLoop) stop() {
	if l.cmd == nil {
		return
	}
	_ = os.WriteFile(l.stopFile, nil, 0o600)
	done := make(chan struct{})
	go func() { _ = l.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-l.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	l.cmd = nil
}
