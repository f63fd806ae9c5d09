//go:build linux

package reliability

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/manager"
	"github.com/warrenhq/warren/controlplane/testutil"
	"github.com/warrenhq/warren/kernel-tests/ktest"
)

// Every name this package creates carries the pid and a sequence number, so
// concurrent runs (several engineers on one machine) never meet.
var seq atomic.Int32

func uniq(prefix string) string { return fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), seq.Add(1)) }

// ifName is a unique interface name that fits in 15 bytes.
func ifName(prefix string) string {
	s := fmt.Sprintf("%s%d%d", prefix, os.Getpid()%100000, seq.Add(1))
	if len(s) > 15 {
		s = s[:15]
	}
	return s
}

const metricsPort = 9323 // each host has its own loopback, so one port serves all

// cluster is a set of hosts on one switch.
type cluster struct {
	t      *testing.T
	bin    string
	image  string
	dir    string // short (unix socket paths are limited to 108 bytes)
	sw     string // switch netns holding the bridge
	prefix string // "192.168.N." — the hosts' LAN
	hosts  []*host
	cg2    string // the cgroup2 mount (pure v2 or hybrid host)
}

// host is one machine: a netns with an address on the LAN, a containerd
// and (once started) a warren process.
type host struct {
	c       *cluster
	name    string // h1, h2, …
	netns   string
	ip      string
	dataDir string
	ctd     *ktest.Containerd
	ctdNS   string
	cgroup  string // --cgroup-parent
	wg      string
	bridge  string
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	args   []string // the last start command, for restarts
}

// newCluster builds n hosts on a switch and starts each host's containerd.
// Warren itself is started by init and join.
func newCluster(t *testing.T, n int) *cluster {
	t.Helper()
	ktest.Root(t)
	for _, b := range []string{"ip", "nsenter", "curl", "sh"} {
		ktest.Binary(t, b)
	}
	cg2 := ktest.Cgroup2(t) // the eBPF socket load balancer attaches there
	c := &cluster{t: t, bin: warrenBinary(t), image: demoImage(t), cg2: cg2}
	c.dir = "/run/" + uniq("wrl-")
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(c.dir) })
	c.prefix = fmt.Sprintf("192.168.%d.", 200+os.Getpid()%50)

	c.sw = newNetns(t, "sw")
	br := "br0"
	ktest.Run(t, "ip", "-n", c.sw, "link", "add", br, "type", "bridge")
	ktest.Run(t, "ip", "-n", c.sw, "link", "set", br, "up")
	for i := 1; i <= n; i++ {
		h := &host{c: c, name: fmt.Sprintf("h%d", i), ip: fmt.Sprintf("%s%d", c.prefix, i)}
		h.netns = newNetns(t, h.name)
		port := fmt.Sprintf("p%d", i)
		ktest.Run(t, "ip", "-n", c.sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.netns)
		ktest.Run(t, "ip", "-n", c.sw, "link", "set", port, "master", br, "up")
		ktest.Run(t, "ip", "-n", h.netns, "addr", "add", h.ip+"/24", "dev", "eth0")
		ktest.Run(t, "ip", "-n", h.netns, "link", "set", "eth0", "up")
		h.dataDir = filepath.Join(c.dir, h.name)
		h.logPath = filepath.Join(c.dir, h.name+".log")
		h.ctdNS = uniq("wrl-" + h.name + "-")
		h.cgroup = uniq("wrl-" + h.name + "-")
		h.wg = ifName("wrg")
		h.bridge = ifName("wrb")
		// Clean-ups run last-registered first: warren, then containerd, then
		// what they leave behind (cgroups, pins, sockets), then the netns.
		t.Cleanup(h.removeLeftovers)
		h.ctd = ktest.StartContainerd(t, ktest.ContainerdOptions{NetNS: h.netns, Tag: "rel" + h.name})
		t.Cleanup(h.stopAndReport)
		c.hosts = append(c.hosts, h)
	}
	return c
}

func newNetns(t *testing.T, tag string) string {
	t.Helper()
	name := uniq("wrl-" + tag + "-")
	ktest.Run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { ktest.RunQuiet("ip", "netns", "del", name) })
	ktest.Run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

func (h *host) nsPath() string { return "/run/netns/" + h.netns }

// nodeFlags are the per-host flags of init, join and manager run.
func (h *host) nodeFlags() []string {
	return []string{
		"--advertise-addr", h.ip, "--listen-addr", ":2377",
		"--containerd", h.ctd.Socket, "--containerd-namespace", h.ctdNS,
		"--cgroup-parent", h.cgroup, "--wireguard-interface", h.wg, "--bridge", h.bridge,
		"--metrics-addr", fmt.Sprintf("127.0.0.1:%d", metricsPort), "--host-lb=false", "--log-format", "json",
	}
}

// start runs warren inside the host's netns, in its own process group,
// with stdout and stderr appended to the host's log.
func (h *host) start(args ...string) {
	t := h.c.t
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd != nil {
		t.Fatalf("%s: warren already running", h.name)
	}
	logf, err := os.OpenFile(h.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(logf, "=== %s: warren %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	full := append([]string{"--net=" + h.nsPath(), "--", h.c.bin, "--data-dir", h.dataDir}, args...)
	cmd := exec.Command("nsenter", full...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("%s: start warren: %v", h.name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	h.cmd, h.exited, h.args = cmd, exited, args
}

// pid is the warren process (nsenter execs it, so it keeps nsenter's pid).
func (h *host) pid() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd == nil {
		return 0
	}
	return h.cmd.Process.Pid
}

func (h *host) running() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd == nil {
		return false
	}
	select {
	case <-h.exited:
		return false
	default:
		return true
	}
}

// stop signals warren's process group and waits for it; SIGKILL after 10s.
func (h *host) stop(sig syscall.Signal) {
	h.mu.Lock()
	cmd, exited := h.cmd, h.exited
	h.cmd = nil
	h.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
	}
}

func (h *host) stopAndReport() {
	h.stop(syscall.SIGTERM)
	if h.c.t.Failed() {
		b, _ := os.ReadFile(h.logPath)
		h.c.t.Logf("---- %s warren log (tail) %s ----\n%s", h.name, h.logPath, tail(string(b), 6000))
	}
}

// removeLeftovers deletes what the node leaves when it is killed: its eBPF
// pins, its cgroups in every hierarchy, and the WireGuard UAPI socket.
func (h *host) removeLeftovers() {
	if id, err := manager.LoadIdentity(h.dataDir); err == nil && id.NodeID != "" {
		_ = os.RemoveAll(filepath.Join("/sys/fs/bpf/warren", id.NodeID))
	}
	// The userspace WireGuard device runs in a process of its own that
	// outlives warren (by design); deleting its interface ends it, which
	// also lets the namespace go.
	_ = exec.Command("nsenter", "--net="+h.nsPath(), "ip", "link", "del", h.wg).Run()
	_ = os.Remove("/var/run/wireguard/" + h.wg + ".sock")
	for _, root := range cgroupMounts() {
		removeCgroupTree(filepath.Join(root, h.cgroup))
	}
}

func cgroupMounts() []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		for i, x := range f {
			if x == "-" && i+1 < len(f) && (f[i+1] == "cgroup" || f[i+1] == "cgroup2") {
				out = append(out, f[4])
			}
		}
	}
	return out
}

// removeCgroupTree removes a cgroup and its children, deepest first. The
// processes are gone by now (containerd's clean-up killed the shims), but
// the kernel frees a cgroup a moment after its last process exits.
func removeCgroupTree(dir string) {
	if _, err := os.Stat(dir); err != nil {
		return
	}
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		for i := 0; i < 50; i++ {
			if err := syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// cli runs the warren CLI against this host's data dir (its manager's
// local socket) and returns stdout; stderr goes into the error.
func (h *host) cli(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.c.bin, append([]string{"--data-dir", h.dataDir}, args...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("warren %s: %w\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, tail(stdout.String(), 2000), tail(stderr.String(), 2000))
	}
	return stdout.String(), nil
}

func (h *host) mustCLI(args ...string) string {
	h.c.t.Helper()
	out, err := h.cli(args...)
	if err != nil {
		h.c.t.Fatal(err)
	}
	return out
}

func (h *host) cliJSON(v any, args ...string) error {
	out, err := h.cli(append(args, "-o", "json")...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("warren %s -o json: %w\n%s", strings.Join(args, " "), err, tail(out, 2000))
	}
	return nil
}

func (h *host) nodes() ([]api.Node, error) {
	var ns []api.Node
	return ns, h.cliJSON(&ns, "node", "ls")
}

func (h *host) tasks(svc string) ([]api.Task, error) {
	var ts []api.Task
	return ts, h.cliJSON(&ts, "service", "ps", svc)
}

func (h *host) service(name string) (api.Service, error) {
	var ss []api.Service
	if err := h.cliJSON(&ss, "service", "inspect", name); err != nil {
		return api.Service{}, err
	}
	if len(ss) != 1 {
		return api.Service{}, fmt.Errorf("service inspect %s: %d services", name, len(ss))
	}
	return ss[0], nil
}

func (h *host) info() (client.ClusterInfo, error) {
	var ci client.ClusterInfo
	return ci, h.cliJSON(&ci, "cluster", "info")
}

// init starts the first manager and waits until `node ls` shows it ready.
func (c *cluster) init(h *host, extra ...string) time.Duration {
	c.t.Helper()
	begin := time.Now()
	h.start(append(append([]string{"cluster", "init"}, h.nodeFlags()...), extra...)...)
	c.waitReady(h, h, 90*time.Second)
	return time.Since(begin)
}

// join starts h with `cluster join` against the manager mgr and waits until
// mgr's `node ls` shows it ready.
func (c *cluster) join(h, mgr *host, token string) time.Duration {
	c.t.Helper()
	begin := time.Now()
	h.start(append([]string{"cluster", "join", "--token", token, mgr.ip + ":2377"}, h.nodeFlags()...)...)
	c.waitReady(h, mgr, 90*time.Second)
	return time.Since(begin)
}

// waitReady waits until mgr lists h (by advertised address) as ready.
func (c *cluster) waitReady(h, mgr *host, within time.Duration) {
	c.t.Helper()
	eventually(c.t, h.name+" ready in node ls", within, func() error {
		if !h.running() {
			return errStop(fmt.Errorf("%s: warren exited (log %s)", h.name, h.logPath))
		}
		nodes, err := mgr.nodes()
		if err != nil {
			return err
		}
		for _, n := range nodes {
			if n.Status.Addr == h.ip {
				if n.Status.State == api.NodeReady {
					return nil
				}
				return fmt.Errorf("%s is %s", h.name, n.Status.State)
			}
		}
		return fmt.Errorf("%s not in node ls (%d nodes)", h.name, len(nodes))
	})
}

// nodeID returns the node ID a host got when it joined.
func (h *host) nodeID(t *testing.T) string {
	t.Helper()
	id, err := manager.LoadIdentity(h.dataDir)
	if err != nil {
		t.Fatalf("%s identity: %v", h.name, err)
	}
	return id.NodeID
}

func (c *cluster) hostOfNode(t *testing.T, nodeID string) *host {
	t.Helper()
	for _, h := range c.hosts {
		if id, err := manager.LoadIdentity(h.dataDir); err == nil && id.NodeID == nodeID {
			return h
		}
	}
	return nil
}

// runningTasks returns the tasks of svc that are desired and reported running.
func runningTasks(ts []api.Task) []api.Task {
	var out []api.Task
	for _, t := range ts {
		if t.DesiredState == api.TaskRunning && t.Status.State == api.TaskRunning {
			out = append(out, t)
		}
	}
	return out
}

// waitRunning waits until svc has exactly n running tasks with addresses
// and `service ls` shows n/n, then returns the tasks.
func (c *cluster) waitRunning(mgr *host, svc string, n int, within time.Duration, extra func([]api.Task) error) []api.Task {
	c.t.Helper()
	var got []api.Task
	eventually(c.t, fmt.Sprintf("%s: %d tasks running", svc, n), within, func() error {
		ts, err := mgr.tasks(svc)
		if err != nil {
			return err
		}
		run := runningTasks(ts)
		if len(run) != n {
			return fmt.Errorf("%d running of %d current: %s", len(run), len(ts), describeTasks(ts))
		}
		for _, t := range run {
			if t.Status.Addr == "" || t.Status.PID == 0 {
				return fmt.Errorf("task %s running without address or pid: %+v", t.ID, t.Status)
			}
		}
		if extra != nil {
			if err := extra(run); err != nil {
				return err
			}
		}
		ls, err := mgr.cli("service", "ls")
		if err != nil {
			return err
		}
		if want := fmt.Sprintf("%d/%d", n, n); !lineHas(ls, svc, want) {
			return fmt.Errorf("service ls does not show %s for %s:\n%s", want, svc, ls)
		}
		got = run
		return nil
	})
	return got
}

func lineHas(out string, words ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		all := true
		for _, w := range words {
			found := false
			for _, x := range f {
				if x == w {
					found = true
				}
			}
			all = all && found
		}
		if all {
			return true
		}
	}
	return false
}

func describeTasks(ts []api.Task) string {
	var b strings.Builder
	for _, t := range ts {
		fmt.Fprintf(&b, "\n  %s slot=%d node=%s desired=%s state=%s addr=%s pid=%d health=%s restarts=%d msg=%q err=%q",
			short(t.ID), t.Slot, short(t.NodeID), t.DesiredState, t.Status.State, t.Status.Addr, t.Status.PID,
			t.Status.Health, t.Status.Restarts, t.Status.Message, t.Status.Err)
	}
	return b.String()
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// httpGet fetches url from inside a network namespace (a host's, or a
// container's /proc/PID/ns/net). The socket is created in that namespace;
// no keep-alive, so every request is a new connection.
func httpGet(nsPath, url string) (string, error) {
	tr := &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var conn net.Conn
			err := ns.WithNetNSPath(nsPath, func(ns.NetNS) error {
				d := net.Dialer{Timeout: 2 * time.Second}
				var err error
				conn, err = d.DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		},
	}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 4 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), nil
}

// demoReply parses the demo server's text answer.
type demoReply struct{ Hostname, Version, Client string }

func parseDemo(body string) (demoReply, error) {
	var r demoReply
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		switch k {
		case "hostname":
			r.Hostname = v
		case "version":
			r.Version = v
		case "client":
			r.Client = v
		}
	}
	if r.Hostname == "" {
		return r, fmt.Errorf("not a demo-server answer: %q", tail(body, 300))
	}
	return r, nil
}

// curlFromNodeCgroup sends n requests to url from a process inside the
// host's netns AND inside a cgroup under the node's cgroup parent. With
// --host-lb=false the eBPF socket load balancer is attached to that parent
// only (several nodes share this machine's root cgroup), so this is where a
// VIP is translated — the same place a container's processes live. It
// returns the hostnames that answered, in order ("" for a failed request).
func (h *host) curlFromNodeCgroup(t *testing.T, url string, n int) ([]string, string) {
	t.Helper()
	probe := filepath.Join(h.c.cg2, h.cgroup, "e2e-probe")
	if err := os.MkdirAll(probe, 0o755); err != nil {
		t.Fatalf("probe cgroup: %v", err)
	}
	script := fmt.Sprintf(`echo $$ > %s/cgroup.procs || exit 90
for i in $(seq %d); do curl -s --max-time 2 %s || echo "curl-exit: $?"; echo; echo "---"; done`, probe, n, url)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(n)*3*time.Second+10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", "--net="+h.nsPath(), "--", "sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("probe client in %s: %v\n%s", probe, err, out)
	}
	var hosts []string
	for _, part := range strings.Split(string(out), "---") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		r, err := parseDemo(part)
		if err != nil {
			hosts = append(hosts, "")
			continue
		}
		hosts = append(hosts, r.Hostname)
	}
	return hosts, string(out)
}

// curlFromNodeCgroupQuiet is curlFromNodeCgroup with a pause between
// requests and no t (it runs in a goroutine while the test kills things).
func (h *host) curlFromNodeCgroupQuiet(vip string, n int, pause time.Duration) ([]string, string) {
	probe := filepath.Join(h.c.cg2, h.cgroup, "e2e-probe")
	if err := os.MkdirAll(probe, 0o755); err != nil {
		return nil, err.Error()
	}
	url := "http://" + net.JoinHostPort(vip, "80") + "/"
	script := fmt.Sprintf(`echo $$ > %s/cgroup.procs || exit 90
for i in $(seq %d); do curl -s --max-time 2 %s || echo "curl-exit: $?"; echo; echo "---"; sleep %g; done`, probe, n, url, pause.Seconds())
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(n)*(3*time.Second+pause)+10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", "--net="+h.nsPath(), "--", "sh", "-c", script).CombinedOutput()
	if err != nil {
		return nil, fmt.Sprintf("%v\n%s", err, out)
	}
	var hosts []string
	for _, part := range strings.Split(string(out), "---") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		r, _ := parseDemo(part)
		hosts = append(hosts, r.Hostname)
	}
	return hosts, string(out)
}

// scrape fetches a host's /metrics from inside its netns.
func (h *host) scrape() (string, error) {
	return httpGet(h.nsPath(), fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
}

// vmRSS reads a process's resident set from /proc/PID/status.
func vmRSS(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// eventually is the repository's one polling helper, named as these tests
// have always called it; errStop (testutil.Stop) ends it early when
// retrying cannot help.
var (
	eventually = testutil.Eventually[func() error]
	errStop    = testutil.Stop
)

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// ---- the binary and the demo image, built once per test binary ----

var (
	buildOnce sync.Once
	buildDir  string
	binPath   string
	imgPath   string
	buildErr  error
)

func build() {
	if v := os.Getenv("WARREN_BIN"); v != "" {
		binPath = v
	}
	if v := os.Getenv("WARREN_DEMO_IMAGE"); v != "" {
		imgPath = v
	}
	if binPath != "" && imgPath != "" {
		return
	}
	buildDir, buildErr = os.MkdirTemp("", "warren-rel-")
	if buildErr != nil {
		return
	}
	root, err := moduleRoot()
	if err != nil {
		buildErr = err
		return
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		buildErr = fmt.Errorf("WARREN_BIN not set and no go on PATH: %w", err)
		return
	}
	run := func(env []string, args ...string) error {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if binPath == "" {
		binPath = filepath.Join(buildDir, "warren")
		if buildErr = run([]string{"CGO_ENABLED=0"}, goBin, "build", "-o", binPath, "./cmd/warren"); buildErr != nil {
			return
		}
	}
	if imgPath == "" {
		srv := filepath.Join(buildDir, "demo-server")
		if buildErr = run([]string{"CGO_ENABLED=0"}, goBin, "build", "-trimpath", "-ldflags", "-s -w", "-o", srv, "./cmd/demo-server"); buildErr != nil {
			return
		}
		imgPath = filepath.Join(buildDir, "demo.tar")
		buildErr = run(nil, binPath, "image", "pack", "--binary", srv, "--name", "warren/demo:v1", "-o", imgPath)
	}
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the test directory")
		}
		dir = parent
	}
}

func warrenBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(build)
	if buildErr != nil {
		t.Fatalf("build warren: %v", buildErr)
	}
	return binPath
}

func demoImage(t *testing.T) string {
	t.Helper()
	buildOnce.Do(build)
	if buildErr != nil {
		t.Fatalf("build demo image: %v", buildErr)
	}
	ktest.File(t, imgPath, "demo image archive")
	return imgPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	printTable(os.Stdout)
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func ktestRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	return ktest.Run(t, name, args...)
}

func ktestBinary(t *testing.T, name string) string {
	t.Helper()
	ktest.Root(t)
	return ktest.Binary(t, name)
}
