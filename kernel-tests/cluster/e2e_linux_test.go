//go:build linux

package clustertest

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
)

const demoRef = "warren/demo:v1"

// deployWeb loads the demo image through mgr and creates `web` with n
// replicas, waiting (the CLI's own wait) until it converged.
func deployWeb(t *testing.T, mgr *host, n int) {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			out, err := mgr.cli("service", "ps", "--all", "web")
			t.Logf("service ps --all web (on %s): %v\n%s", mgr.name, err, out)
		}
	})
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

// TestThreeHosts joins two workers, spreads a service over the three
// hosts, checks that a container on h1 reaches a task on h3 through the
// WireGuard mesh, then kills h3 and waits for its replicas to move.
func TestThreeHosts(t *testing.T) {
	c := newCluster(t, 3)
	h1, h2, h3 := c.hosts[0], c.hosts[1], c.hosts[2]
	c.init(h1, "--node-down-grace", "5s")
	token := strings.TrimSpace(h1.mustCLI("cluster", "join-token", "worker", "-q"))
	for _, h := range []*host{h2, h3} {
		d := c.join(h, h1, token)
		t.Logf("measured: %s join -> ready in node ls: %s; worker RSS: %s", h.name, d.Round(time.Millisecond), vmRSS(h.pid()))
	}
	nodes, err := h1.nodes()
	if err != nil {
		t.Fatal(err)
	}
	ready := 0
	for _, n := range nodes {
		if n.Status.State == api.NodeReady {
			ready++
		}
	}
	if len(nodes) != 3 || ready != 3 {
		t.Fatalf("node ls: want 3 ready nodes, got %d of %d", ready, len(nodes))
	}

	deployWeb(t, h1, 3)
	tasks := c.waitRunning(h1, "web", 3, 90*time.Second, func(run []api.Task) error {
		on := map[string]bool{}
		for _, tk := range run {
			on[tk.NodeID] = true
		}
		if len(on) != 3 {
			return fmt.Errorf("3 replicas on %d nodes, want one per node:%s", len(on), describeTasks(run))
		}
		return nil
	})
	byHost := map[*host]api.Task{}
	for _, tk := range tasks {
		byHost[c.hostOfNode(t, tk.NodeID)] = tk
	}
	from, to := byHost[h1], byHost[h3]

	// A container on h1 (its network namespace) -> the task on h3, by
	// address: pod subnet route -> WireGuard -> h3's bridge. The demo server
	// echoes the client address, so we also see the source survived.
	ctrNS := fmt.Sprintf("/proc/%d/ns/net", from.Status.PID)
	var rep demoReply
	eventually(t, "container on h1 -> task on h3 through the mesh", 30*time.Second, func() error {
		var err error
		rep, err = checkTaskAnswers(ctrNS, to)
		return err
	})
	if host, _, _ := net.SplitHostPort(rep.Client); host != from.Status.Addr {
		t.Errorf("task on h3 saw client %s, want the h1 container's address %s", rep.Client, from.Status.Addr)
	}
	// And from h1's host netns via the pod subnet route.
	eventually(t, "h1 host netns -> task on h3", 20*time.Second, func() error {
		_, err := checkTaskAnswers(h1.nsPath(), to)
		return err
	})

	// h3 dies: its warren, its containers, and its link.
	h3ID := h3.nodeID(t)
	h3.stop(syscall.SIGKILL)
	for _, tk := range tasks {
		if tk.NodeID == h3ID {
			_ = syscall.Kill(tk.Status.PID, syscall.SIGKILL)
		}
	}
	ktestRun(t, "ip", "-n", h3.netns, "link", "set", "eth0", "down")
	killed := time.Now()
	eventually(t, "h3 down in node ls", 60*time.Second, func() error {
		nodes, err := h1.nodes()
		if err != nil {
			return err
		}
		for _, n := range nodes {
			if n.ID == h3ID {
				if n.Status.State == api.NodeDown {
					return nil
				}
				return fmt.Errorf("h3 is %s", n.Status.State)
			}
		}
		return fmt.Errorf("h3 missing from node ls")
	})
	t.Logf("measured: h3 killed -> down in node ls: %s", time.Since(killed).Round(time.Millisecond))
	moved := c.waitRunning(h1, "web", 3, 90*time.Second, func(run []api.Task) error {
		for _, tk := range run {
			if tk.NodeID == h3ID {
				return fmt.Errorf("task %s still counted running on dead h3", short(tk.ID))
			}
		}
		return nil
	})
	t.Logf("measured: h3 killed -> its replica running on h1/h2 (3/3): %s", time.Since(killed).Round(time.Millisecond))
	svc, err := h1.service("web")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "VIP from h1 spreads over the moved replicas only", 30*time.Second, func() error {
		return vipSpread(t, h1, svc.Endpoint.VIP, moved, 30)
	})
}

// metricSum adds up every sample of a family in Prometheus text format
// (-1 when the family has no sample).
func metricSum(text, family string) float64 {
	sum, found := 0.0, false
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, family) {
			continue
		}
		rest := line[len(family):]
		if !strings.HasPrefix(rest, "{") && !strings.HasPrefix(rest, " ") {
			continue
		}
		f := strings.Fields(rest[strings.LastIndex(rest, "}")+1:])
		if len(f) == 0 {
			continue
		}
		var v float64
		if _, err := fmt.Sscanf(f[0], "%g", &v); err == nil {
			sum += v
			found = true
		}
	}
	if !found {
		return -1
	}
	return sum
}

// TestMetrics scrapes a manager and a worker: the text passes promtool,
// the cluster, raft, task and dataplane families are there, and the
// dataplane's connection counter moves when traffic goes to the VIP.
func TestMetrics(t *testing.T) {
	promtool := ktestBinary(t, "promtool")
	c := newCluster(t, 2)
	h1, h2 := c.hosts[0], c.hosts[1]
	c.init(h1)
	c.join(h2, h1, strings.TrimSpace(h1.mustCLI("cluster", "join-token", "worker", "-q")))
	deployWeb(t, h1, 2)
	tasks := c.waitRunning(h1, "web", 2, 60*time.Second, nil)
	svc, err := h1.service("web")
	if err != nil {
		t.Fatal(err)
	}

	manager := []string{"warren_cluster_nodes", "warren_cluster_tasks", "warren_raft_is_leader", "warren_raft_term", "warren_raft_commit_index"}
	node := []string{"warren_task_cpu_seconds_total", "warren_task_memory_bytes", "warren_task_restarts_total", "warren_dataplane_counters_read_failed"}
	for _, h := range c.hosts {
		want := node
		if h == h1 {
			want = append(append([]string{}, manager...), node...)
		}
		var text string
		eventually(t, h.name+" /metrics has every required family", 30*time.Second, func() error {
			var err error
			if text, err = h.scrape(); err != nil {
				return err
			}
			for _, f := range want {
				if metricSum(text, f) < 0 {
					return fmt.Errorf("%s: no samples of %s", h.name, f)
				}
			}
			return nil
		})
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(text)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics on %s's /metrics: %v\n%s", h.name, err, out)
		}
	}
	if v := metricSum(mustScrape(t, h1), "warren_raft_is_leader"); v != 1 {
		t.Errorf("warren_raft_is_leader on the only manager = %v, want 1", v)
	}
	if v := metricSum(mustScrape(t, h1), "warren_cluster_nodes"); v != 2 {
		t.Errorf("warren_cluster_nodes sums to %v, want 2 nodes", v)
	}

	// The eBPF service counters: a series per service once it has counted.
	before := max(0, metricSum(mustScrape(t, h2), "warren_dataplane_service_connections_total"))
	const n = 20
	eventually(t, "VIP from h2", 30*time.Second, func() error { return vipSpread(t, h2, svc.Endpoint.VIP, tasks, n) })
	text := mustScrape(t, h2)
	after := metricSum(text, "warren_dataplane_service_connections_total")
	if v := metricSum(text, "warren_dataplane_counters_read_failed"); v != 0 {
		t.Errorf("h2 warren_dataplane_counters_read_failed = %v", v)
	}
	if metricSum(text, "warren_dataplane_backend_connections_total") < 0 {
		t.Errorf("h2 exports no warren_dataplane_backend_connections_total after VIP traffic")
	}
	t.Logf("h2 warren_dataplane_service_connections_total: %v -> %v after %d requests to the VIP", before, after, n)
	if after-before < n {
		t.Errorf("h2 dataplane connection counter rose by %v after %d connections to the VIP", after-before, n)
	}

	// Per-task packets and bytes, counted by TCX programs on the tasks'
	// veths: the VIP traffic above reached tasks on some node.
	eventually(t, "per-task network counters moved", 30*time.Second, func() error {
		var pkts, bytes float64
		for _, h := range c.hosts {
			text := mustScrape(t, h)
			pkts += max(0, metricSum(text, "warren_task_network_packets_total"))
			bytes += max(0, metricSum(text, "warren_task_network_bytes_total"))
		}
		if pkts <= 0 || bytes <= 0 {
			return fmt.Errorf("task packets %v, bytes %v", pkts, bytes)
		}
		t.Logf("tasks' network counters: %v packets, %v bytes", pkts, bytes)
		return nil
	})
}

func mustScrape(t *testing.T, h *host) string {
	t.Helper()
	s, err := h.scrape()
	if err != nil {
		t.Fatalf("%s /metrics: %v", h.name, err)
	}
	return s
}

// leaderOf asks h (with --stale, so a follower without quorum answers too)
// which manager leads; "" while there is none.
func leaderOf(h *host) (leader string, index uint64, err error) {
	var ci client.ClusterInfo
	if err := h.cliJSON(&ci, "cluster", "info", "--stale"); err != nil {
		return "", 0, err
	}
	for _, m := range ci.Managers {
		if m.Leader {
			leader = m.NodeID
		}
	}
	return leader, ci.Index, nil
}

// TestManagerFailover runs three managers, kills the leader with SIGKILL,
// and checks: a new leader is elected, the VIP keeps answering throughout
// (the dataplane does not need the control plane), and the old leader,
// restarted with the same command, resumes and catches up.
func TestManagerFailover(t *testing.T) {
	c := newCluster(t, 3)
	h1, h2, h3 := c.hosts[0], c.hosts[1], c.hosts[2]
	c.init(h1)
	token := strings.TrimSpace(h1.mustCLI("cluster", "join-token", "manager", "-q"))
	for _, h := range []*host{h2, h3} {
		d := c.join(h, h1, token)
		t.Logf("measured: %s manager join -> ready in node ls: %s", h.name, d.Round(time.Millisecond))
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
			return fmt.Errorf("%d voters: %+v", voters, ci.Managers)
		}
		return nil
	})
	// Nodes h2 and h3 fetch the image from their own manager first; this
	// needs managers that do not hold the archive to still serve it.
	deployWeb(t, h1, 3)
	tasks := c.waitRunning(h1, "web", 3, 90*time.Second, nil)
	svc, err := h1.service("web")
	if err != nil {
		t.Fatal(err)
	}

	leaderID, _, err := leaderOf(h1)
	if err != nil || leaderID == "" {
		t.Fatalf("no leader before the kill: %q %v", leaderID, err)
	}
	old := c.hostOfNode(t, leaderID)
	var survivors []*host
	for _, h := range c.hosts {
		if h != old {
			survivors = append(survivors, h)
		}
	}
	probe := survivors[0]
	eventually(t, "VIP answers before the kill", 30*time.Second, func() error { return vipSpread(t, probe, svc.Endpoint.VIP, tasks, 15) })

	// Clients keep hitting the VIP while the leader dies and a new one is elected.
	type result struct {
		hosts []string
		raw   string
	}
	during := make(chan result, 1)
	go func() {
		hs, raw := probe.curlFromNodeCgroupQuiet(svc.Endpoint.VIP, 60, 100*time.Millisecond)
		during <- result{hs, raw}
	}()
	// And the published port of another survivor, reached from probe's host
	// as an outside client would (the routing mesh on that node's uplink).
	published := make(chan []error, 1)
	go func() {
		var errs []error
		for i := 0; i < 60; i++ {
			body, err := httpGet(probe.nsPath(), "http://"+survivors[1].ip+":8080/")
			if err == nil {
				_, err = parseDemo(body)
			}
			if err != nil {
				errs = append(errs, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		published <- errs
	}()
	old.stop(syscall.SIGKILL)
	killed := time.Now()
	var newLeader string
	eventually(t, "a new leader", 60*time.Second, func() error {
		id, _, err := leaderOf(probe)
		if err != nil {
			return err
		}
		if id == "" || id == leaderID {
			return fmt.Errorf("leader %q (old %s)", id, short(leaderID))
		}
		newLeader = id
		return nil
	})
	t.Logf("measured: leader %s (%s) killed -> new leader %s: %s", short(leaderID), old.name, short(newLeader), time.Since(killed).Round(time.Millisecond))
	r := <-during
	failed := 0
	for _, h := range r.hosts {
		if h == "" {
			failed++
		}
	}
	t.Logf("VIP during failover: %d requests, %d failed", len(r.hosts), failed)
	if failed > 0 || len(r.hosts) == 0 {
		t.Errorf("VIP %s did not answer every request during the failover (%d of %d failed):\n%s", svc.Endpoint.VIP, failed, len(r.hosts), tail(r.raw, 1500))
	}
	if errs := <-published; len(errs) > 0 {
		t.Errorf("published port %s:8080 failed %d of 60 requests during the failover; first: %v", survivors[1].ip, len(errs), errs[0])
	} else {
		t.Logf("published port %s:8080 answered 60 of 60 requests during the failover", survivors[1].ip)
	}

	// A change made without the old leader, then the old leader comes back.
	probe.mustCLI("service", "scale", "web=4", "--detach")
	_, want, err := leaderOf(probe)
	if err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	old.start(old.args...)
	eventually(t, old.name+" resumed and caught up to index "+fmt.Sprint(want), 90*time.Second, func() error {
		if !old.running() {
			return errStop(fmt.Errorf("%s exited after restart (log %s)", old.name, old.logPath))
		}
		leader, idx, err := leaderOf(old)
		if err != nil {
			return err
		}
		if leader != newLeader {
			return fmt.Errorf("%s sees leader %q, want %s", old.name, leader, short(newLeader))
		}
		if idx < want {
			return fmt.Errorf("%s at index %d, want >= %d", old.name, idx, want)
		}
		return nil
	})
	t.Logf("measured: old leader restart -> caught up: %s", time.Since(restarted).Round(time.Millisecond))
	c.waitReady(old, probe, 60*time.Second)
	// The scale was made while it was down (--detach): its own replica
	// must come to show the 4th task running too.
	eventually(t, old.name+"'s own store shows the scale made while it was down", 60*time.Second, func() error {
		var ts []api.Task
		if err := old.cliJSON(&ts, "service", "ps", "web", "--stale"); err != nil {
			return err
		}
		if n := len(runningTasks(ts)); n != 4 {
			return fmt.Errorf("%d running tasks of web, want 4:%s", n, describeTasks(ts))
		}
		return nil
	})
}
