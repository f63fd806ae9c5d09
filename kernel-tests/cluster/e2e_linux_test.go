//go:build linux

package clustertest

import (
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

const demoRef = "warren/demo:v1"

// deployWeb loads the demo image through mgr and creates `web` with n
// replicas, waiting (the CLI's own wait) until it converged.
func deployWeb(t *testing.T, mgr *host, n int) {
	t.Helper()
	mgr.mustCLI("image", "load", "-i", mgr.c.image)
	mgr.mustCLI("service", "create", "web", "--image", demoRef, "--replicas", fmt.Sprint(n),
		"--port", "8080:80", "--health-http", "/healthz", "--health-interval", "2s", "--health-timeout", "1s", "--timeout", "2m")
}

// checkTaskAnswers GETs a task's address from nsPath and checks that the
// task itself answered (the demo server's hostname is the task ID).
func checkTaskAnswers(nsPath string, task api.Task) (demoReply, error) {
	body, err := httpGet(nsPath, "http://"+net.JoinHostPort(task.Status.Addr, "80")+"/")
	if err != nil {
		return demoReply{}, err
	}
	r, err := parseDemo(body)
	if err != nil {
		return r, err
	}
	if !strings.HasPrefix(task.ID, r.Hostname) {
		return r, fmt.Errorf("%s answered as %q, want task %s", task.Status.Addr, r.Hostname, task.ID)
	}
	return r, nil
}

// vipSpread sends n requests to the VIP from h's node cgroup and checks
// that every request was answered by one of tasks and that all tasks answered.
func vipSpread(t *testing.T, h *host, vip string, tasks []api.Task, n int) error {
	t.Helper()
	hosts, raw := h.curlFromNodeCgroup(t, "http://"+net.JoinHostPort(vip, "80")+"/", n)
	counts := map[string]int{}
	for _, hn := range hosts {
		if hn == "" {
			return fmt.Errorf("a request to VIP %s failed; output:\n%s", vip, tail(raw, 1500))
		}
		known := false
		for _, tk := range tasks {
			if strings.HasPrefix(tk.ID, hn) {
				known = true
			}
		}
		if !known {
			return fmt.Errorf("VIP %s answered by %q, not a running task of the service", vip, hn)
		}
		counts[hn]++
	}
	if len(hosts) != n {
		return fmt.Errorf("VIP %s: %d answers to %d requests:\n%s", vip, len(hosts), n, tail(raw, 1500))
	}
	if len(counts) != len(tasks) {
		return fmt.Errorf("VIP %s: %d requests spread over %d of %d tasks: %v", vip, n, len(counts), len(tasks), counts)
	}
	t.Logf("VIP %s: %d requests spread %v", vip, n, counts)
	return nil
}

// TestSingleNode is the quickstart: one manager that also runs tasks,
// three replicas of the demo server, each reachable on its own address and
// all of them through the service VIP.
func TestSingleNode(t *testing.T) {
	c := newCluster(t, 1)
	h := c.hosts[0]
	begin := time.Now()
	initDur := c.init(h)
	t.Logf("measured: cluster init -> manager ready in node ls: %s; manager RSS after init: %s", initDur.Round(time.Millisecond), vmRSS(h.pid()))

	nodes, err := h.nodes()
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 || nodes[0].Spec.Role != api.RoleManager || nodes[0].Status.State != api.NodeReady {
		t.Fatalf("node ls: want one ready manager, got %+v", nodes)
	}
	if m := nodes[0].Status.Manager; m == nil || !m.Leader {
		t.Fatalf("node ls: the only manager is not the leader: %+v", nodes[0].Status.Manager)
	}

	deployWeb(t, h, 3)
	tasks := c.waitRunning(h, "web", 3, 60*time.Second, nil)
	for _, tk := range tasks {
		eventually(t, "task "+tk.Status.Addr+" answers from the host netns", 20*time.Second, func() error {
			_, err := checkTaskAnswers(h.nsPath(), tk)
			return err
		})
	}
	svc, err := h.service("web")
	if err != nil {
		t.Fatal(err)
	}
	if net.ParseIP(svc.Endpoint.VIP) == nil {
		t.Fatalf("service web has no VIP: %+v", svc.Endpoint)
	}
	eventually(t, "VIP "+svc.Endpoint.VIP+" answers, spread over 3 replicas", 30*time.Second, func() error {
		return vipSpread(t, h, svc.Endpoint.VIP, tasks, 30)
	})
	t.Logf("measured: init -> 3 replicas serving through the VIP: %s; manager RSS now: %s",
		time.Since(begin).Round(time.Millisecond), vmRSS(h.pid()))
}

// TestReplicaRestartsInPlace kills a replica's process: the node restarts
// the same task (Restarts counts it) and the service is 3/3 again.
func TestReplicaRestartsInPlace(t *testing.T) {
	c := newCluster(t, 1)
	h := c.hosts[0]
	c.init(h)
	deployWeb(t, h, 3)
	tasks := c.waitRunning(h, "web", 3, 60*time.Second, nil)
	victim := tasks[0]
	if err := syscall.Kill(victim.Status.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d (task %s): %v", victim.Status.PID, victim.ID, err)
	}
	killed := time.Now()
	// First the service must recover: 3/3 again with the victim's slot
	// running on the same node (the node is healthy, nothing should move).
	run := c.waitRunning(h, "web", 3, 60*time.Second, func(run []api.Task) error {
		for _, tk := range run {
			if tk.Slot == victim.Slot && tk.Status.PID != victim.Status.PID {
				return nil
			}
		}
		return fmt.Errorf("slot %d not running again", victim.Slot)
	})
	t.Logf("measured: kill -9 -> slot %d running again and 3/3 in service ls: %s", victim.Slot, time.Since(killed).Round(time.Millisecond))
	var back api.Task
	for _, tk := range run {
		if tk.Slot == victim.Slot {
			back = tk
		}
	}
	// Then how it recovered: in place means the same task, a new process,
	// and Restarts counting it.
	if back.ID != victim.ID || back.Status.Restarts <= victim.Status.Restarts {
		var all []api.Task
		_ = h.cliJSON(&all, "service", "ps", "--all", "web")
		t.Errorf("replica not restarted in place: killed task %s (pid %d, restarts %d); slot %d now runs task %s (pid %d, restarts %d); history:%s",
			short(victim.ID), victim.Status.PID, victim.Status.Restarts, victim.Slot, short(back.ID), back.Status.PID, back.Status.Restarts, describeTasks(all))
	} else {
		t.Logf("restarted in place: task %s pid %d -> %d, restarts %d", short(back.ID), victim.Status.PID, back.Status.PID, back.Status.Restarts)
	}
	eventually(t, "restarted task answers", 20*time.Second, func() error {
		_, err := checkTaskAnswers(h.nsPath(), back)
		return err
	})
}
