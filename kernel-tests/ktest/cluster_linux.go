//go:build linux

package ktest

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
	"github.com/warrenhq/warren/runtime"
)

// The cluster harness: hosts are network namespaces on one switch (a
// bridge in a namespace of its own), each with its own containerd and,
// once started, its own warren process. kernel-tests/cluster and
// kernel-tests/reliability build on it; each suite names its namespaces,
// interfaces, cgroups and LAN apart (ClusterNames), so their runs never
// meet even when two engineers run them at once.

// Seq numbers every name the harness creates, after the pid.
var Seq atomic.Int32

// Uniq is a name unique to this process: prefix, pid, sequence.
func Uniq(prefix string) string { return fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), Seq.Add(1)) }

// IfName is a unique interface name that fits in 15 bytes.
func IfName(prefix string) string {
	s := fmt.Sprintf("%s%d%d", prefix, os.Getpid()%100000, Seq.Add(1))
	if len(s) > 15 {
		s = s[:15]
	}
	return s
}

// MetricsPort is every host's metrics port: each host has its own loopback.
const MetricsPort = 9323

// ClusterNames keeps one suite's names apart from another's.
type ClusterNames struct {
	// Prefix starts the run directory, namespaces, containerd namespaces and
	// cgroups ("wke" → /run/wke-<pid>-<n>).
	Prefix string
	// WireGuard and Bridge start the hosts' interface names.
	WireGuard, Bridge string
	// Containerd tags each host's containerd.
	Containerd string
	// LAN picks the hosts' /24: 192.168.(LANBase + pid%LANSpread).
	LANBase, LANSpread int
}

// Cluster is a set of hosts on one switch.
type Cluster struct {
	T      testing.TB
	Names  ClusterNames
	Bin    string // the warren binary
	Image  string // the demo image archive
	Dir    string // short: unix socket paths are limited to 108 bytes
	Switch string // the netns holding the bridge br0
	Prefix string // "192.168.N." — the hosts' LAN
	Hosts  []*Host
	Cg2    string // the cgroup2 mount (pure v2 or hybrid host)
}

// Host is one machine: a netns with an address on the LAN, a containerd
// and (once started) a warren process.
type Host struct {
	C       *Cluster
	Name    string // h1, h2, …
	Netns   string
	IP      string
	DataDir string
	Ctd     *Containerd
	CtdNS   string
	Cgroup  string // --cgroup-parent
	WG      string
	Bridge  string
	LogPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	args   []string
}

// NewCluster builds n hosts on a switch and starts each host's containerd.
// Warren itself is started by Init and Join.
func NewCluster(t testing.TB, n int, names ClusterNames) *Cluster {
	t.Helper()
	Root(t)
	for _, b := range []string{"ip", "nsenter", "curl", "sh"} {
		Binary(t, b)
	}
	cg2 := Cgroup2(t) // the eBPF socket load balancer attaches there
	c := &Cluster{T: t, Names: names, Bin: WarrenBinary(t), Image: DemoImage(t), Cg2: cg2}
	c.Dir = "/run/" + Uniq(names.Prefix+"-")
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(c.Dir) })
	c.Prefix = fmt.Sprintf("192.168.%d.", names.LANBase+os.Getpid()%names.LANSpread)

	c.Switch = c.NewNetns(t, "sw")
	br := "br0"
	Run(t, "ip", "-n", c.Switch, "link", "add", br, "type", "bridge")
	Run(t, "ip", "-n", c.Switch, "link", "set", br, "up")
	for i := 1; i <= n; i++ {
		h := &Host{C: c, Name: fmt.Sprintf("h%d", i), IP: fmt.Sprintf("%s%d", c.Prefix, i)}
		h.Netns = c.NewNetns(t, h.Name)
		port := fmt.Sprintf("p%d", i)
		Run(t, "ip", "-n", c.Switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.Netns)
		Run(t, "ip", "-n", c.Switch, "link", "set", port, "master", br, "up")
		Run(t, "ip", "-n", h.Netns, "addr", "add", h.IP+"/24", "dev", "eth0")
		Run(t, "ip", "-n", h.Netns, "link", "set", "eth0", "up")
		h.DataDir = filepath.Join(c.Dir, h.Name)
		h.LogPath = filepath.Join(c.Dir, h.Name+".log")
		h.CtdNS = Uniq(names.Prefix + "-" + h.Name + "-")
		h.Cgroup = Uniq(names.Prefix + "-" + h.Name + "-")
		h.WG = IfName(names.WireGuard)
		h.Bridge = IfName(names.Bridge)
		// Clean-ups run last-registered first: warren, then containerd, then
		// what they leave behind (cgroups, pins, sockets), then the netns.
		t.Cleanup(h.RemoveLeftovers)
		h.Ctd = StartContainerd(t, ContainerdOptions{NetNS: h.Netns, Tag: names.Containerd + h.Name})
		t.Cleanup(h.StopAndReport)
		c.Hosts = append(c.Hosts, h)
	}
	return c
}

// NewNetns adds a network namespace named after the suite and tag, with
// lo up, deleted when the test ends.
func (c *Cluster) NewNetns(t testing.TB, tag string) string {
	t.Helper()
	return NewNetns(t, c.Names.Prefix, tag)
}

// NewNetns adds a network namespace prefix-tag-<pid>-<n>, with lo up,
// deleted when the test ends.
func NewNetns(t testing.TB, prefix, tag string) string {
	t.Helper()
	name := Uniq(prefix + "-" + tag + "-")
	Run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { RunQuiet("ip", "netns", "del", name) })
	Run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// NSPath is the host's netns as a path for nsenter and setns.
func (h *Host) NSPath() string { return "/run/netns/" + h.Netns }

// NodeFlags are the per-host flags of init, join and manager run.
func (h *Host) NodeFlags() []string {
	return []string{
		"--advertise-addr", h.IP, "--listen-addr", ":2377",
		"--containerd", h.Ctd.Socket, "--containerd-namespace", h.CtdNS,
		"--cgroup-parent", h.Cgroup, "--wireguard-interface", h.WG, "--bridge", h.Bridge,
		"--metrics-addr", fmt.Sprintf("127.0.0.1:%d", MetricsPort), "--host-lb=false", "--log-format", "json",
	}
}

// Start runs warren inside the host's netns, in its own process group,
// with stdout and stderr appended to the host's log.
func (h *Host) Start(args ...string) {
	t := h.C.T
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd != nil {
		t.Fatalf("%s: warren already running", h.Name)
	}
	logf, err := os.OpenFile(h.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(logf, "=== %s: warren %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	full := append([]string{"--net=" + h.NSPath(), "--", h.C.Bin, "--data-dir", h.DataDir}, args...)
	cmd := exec.Command("nsenter", full...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("%s: start warren: %v", h.Name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	h.cmd, h.exited, h.args = cmd, exited, args
}

// Args is the last start command, for restarts.
func (h *Host) Args() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.args
}

// PID is the warren process (nsenter execs it, so it keeps nsenter's pid).
func (h *Host) PID() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd == nil {
		return 0
	}
	return h.cmd.Process.Pid
}

// Running reports whether warren was started and has not exited.
func (h *Host) Running() bool {
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

// Stop signals warren's process group and waits for it; SIGKILL after 10s.
func (h *Host) Stop(sig syscall.Signal) {
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

// StopAndReport stops warren and, when the test failed, logs its log's tail.
func (h *Host) StopAndReport() {
	h.Stop(syscall.SIGTERM)
	if h.C.T.Failed() {
		b, _ := os.ReadFile(h.LogPath)
		h.C.T.Logf("---- %s warren log (tail) %s ----\n%s", h.Name, h.LogPath, tail(string(b), 6000))
	}
}

// RemoveLeftovers deletes what the node leaves when it is killed: its eBPF
// pins, its secret tmpfs, its cgroups in every hierarchy, and the
// WireGuard UAPI socket.
func (h *Host) RemoveLeftovers() {
	if id, err := manager.LoadIdentity(h.DataDir); err == nil && id.NodeID != "" {
		_ = os.RemoveAll(filepath.Join("/sys/fs/bpf/warren", id.NodeID))
		RemoveSecretFS(id.NodeID)
	}
	// The userspace WireGuard device runs in a process of its own that
	// outlives warren (by design); deleting its interface ends it, which
	// also lets the namespace go.
	_ = exec.Command("nsenter", "--net="+h.NSPath(), "ip", "link", "del", h.WG).Run()
	_ = os.Remove("/var/run/wireguard/" + h.WG + ".sock")
	for _, root := range CgroupMounts() {
		RemoveCgroupTree(filepath.Join(root, h.Cgroup))
	}
}

// RemoveSecretFS unmounts a node's secret tmpfs, which every node mounts
// at start and which outlives warren by design (a restarted agent finds
// its tasks' files there): without this every test node left one mount
// behind on the machine.
func RemoveSecretFS(nodeID string) {
	root := filepath.Join("/run/warren", nodeID, "secrets")
	_ = runtime.UnmountSecretFS(root)
	_ = os.Remove(filepath.Dir(root))
}

// CgroupMounts lists the mount points of every cgroup hierarchy.
func CgroupMounts() []string {
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

// RemoveCgroupTree removes a cgroup and its children, deepest first. The
// processes are gone by now (containerd's clean-up killed the shims), but
// the kernel frees a cgroup a moment after its last process exits.
func RemoveCgroupTree(dir string) {
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

// CLI runs the warren CLI against this host's data dir (its manager's
// local socket) and returns stdout; stderr goes into the error.
func (h *Host) CLI(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.C.Bin, append([]string{"--data-dir", h.DataDir}, args...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("warren %s: %w\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, tail(stdout.String(), 2000), tail(stderr.String(), 2000))
	}
	return stdout.String(), nil
}

// MustCLI is CLI that fails the test on an error.
func (h *Host) MustCLI(args ...string) string {
	h.C.T.Helper()
	out, err := h.CLI(args...)
	if err != nil {
		h.C.T.Fatal(err)
	}
	return out
}

// CLIJSON runs the CLI with -o json and decodes its output into v.
func (h *Host) CLIJSON(v any, args ...string) error {
	out, err := h.CLI(append(args, "-o", "json")...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("warren %s -o json: %w\n%s", strings.Join(args, " "), err, tail(out, 2000))
	}
	return nil
}

// Nodes is `node ls`.
func (h *Host) Nodes() ([]api.Node, error) {
	var ns []api.Node
	return ns, h.CLIJSON(&ns, "node", "ls")
}

// Tasks is `service ps svc`.
func (h *Host) Tasks(svc string) ([]api.Task, error) {
	var ts []api.Task
	return ts, h.CLIJSON(&ts, "service", "ps", svc)
}

// Service is `service inspect name`.
func (h *Host) Service(name string) (api.Service, error) {
	var ss []api.Service
	if err := h.CLIJSON(&ss, "service", "inspect", name); err != nil {
		return api.Service{}, err
	}
	if len(ss) != 1 {
		return api.Service{}, fmt.Errorf("service inspect %s: %d services", name, len(ss))
	}
	return ss[0], nil
}

// Info is `cluster info`.
func (h *Host) Info() (client.ClusterInfo, error) {
	var ci client.ClusterInfo
	return ci, h.CLIJSON(&ci, "cluster", "info")
}

// Init starts the first manager and waits until `node ls` shows it ready.
func (c *Cluster) Init(h *Host, extra ...string) time.Duration {
	c.T.Helper()
	begin := time.Now()
	h.Start(append(append([]string{"cluster", "init"}, h.NodeFlags()...), extra...)...)
	c.WaitReady(h, h, 90*time.Second)
	return time.Since(begin)
}

// Join starts h with `cluster join` against the manager mgr and waits
// until mgr's `node ls` shows it ready.
func (c *Cluster) Join(h, mgr *Host, token string) time.Duration {
	c.T.Helper()
	begin := time.Now()
	h.Start(append([]string{"cluster", "join", "--token", token, mgr.IP + ":2377"}, h.NodeFlags()...)...)
	c.WaitReady(h, mgr, 90*time.Second)
	return time.Since(begin)
}

// WaitReady waits until mgr lists h (by advertised address) as ready.
func (c *Cluster) WaitReady(h, mgr *Host, within time.Duration) {
	c.T.Helper()
	testutil.Eventually(c.T, h.Name+" ready in node ls", within, func() error {
		if !h.Running() {
			return testutil.Stop(fmt.Errorf("%s: warren exited (log %s)", h.Name, h.LogPath))
		}
		nodes, err := mgr.Nodes()
		if err != nil {
			return err
		}
		for _, n := range nodes {
			if n.Status.Addr == h.IP {
				if n.Status.State == api.NodeReady {
					return nil
				}
				return fmt.Errorf("%s is %s", h.Name, n.Status.State)
			}
		}
		return fmt.Errorf("%s not in node ls (%d nodes)", h.Name, len(nodes))
	})
}

// NodeID returns the node ID a host got when it joined.
func (h *Host) NodeID(t testing.TB) string {
	t.Helper()
	id, err := manager.LoadIdentity(h.DataDir)
	if err != nil {
		t.Fatalf("%s identity: %v", h.Name, err)
	}
	return id.NodeID
}

// HostOfNode is the host that joined as nodeID, or nil.
func (c *Cluster) HostOfNode(nodeID string) *Host {
	for _, h := range c.Hosts {
		if id, err := manager.LoadIdentity(h.DataDir); err == nil && id.NodeID == nodeID {
			return h
		}
	}
	return nil
}

// RunningTasks returns the tasks that are desired and reported running.
func RunningTasks(ts []api.Task) []api.Task {
	var out []api.Task
	for _, t := range ts {
		if t.DesiredState == api.TaskRunning && t.Status.State == api.TaskRunning {
			out = append(out, t)
		}
	}
	return out
}

// WaitRunning waits until svc has exactly n running tasks with addresses
// and `service ls` shows n/n, then returns the tasks.
func (c *Cluster) WaitRunning(mgr *Host, svc string, n int, within time.Duration, extra func([]api.Task) error) []api.Task {
	c.T.Helper()
	var got []api.Task
	testutil.Eventually(c.T, fmt.Sprintf("%s: %d tasks running", svc, n), within, func() error {
		ts, err := mgr.Tasks(svc)
		if err != nil {
			return err
		}
		run := RunningTasks(ts)
		if len(run) != n {
			return fmt.Errorf("%d running of %d current: %s", len(run), len(ts), DescribeTasks(ts))
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
		ls, err := mgr.CLI("service", "ls")
		if err != nil {
			return err
		}
		if want := fmt.Sprintf("%d/%d", n, n); !LineHas(ls, svc, want) {
			return fmt.Errorf("service ls does not show %s for %s:\n%s", want, svc, ls)
		}
		got = run
		return nil
	})
	return got
}

// LineHas reports whether one line of out has every word as a field.
func LineHas(out string, words ...string) bool {
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

// DescribeTasks is one line per task, for failure messages.
func DescribeTasks(ts []api.Task) string {
	var b strings.Builder
	for _, t := range ts {
		fmt.Fprintf(&b, "\n  %s slot=%d node=%s desired=%s state=%s addr=%s pid=%d health=%s restarts=%d msg=%q err=%q",
			Short(t.ID), t.Slot, Short(t.NodeID), t.DesiredState, t.Status.State, t.Status.Addr, t.Status.PID,
			t.Status.Health, t.Status.Restarts, t.Status.Message, t.Status.Err)
	}
	return b.String()
}

// Short is an ID's first 12 characters.
func Short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// HTTPGet fetches url from inside a network namespace (a host's, or a
// container's /proc/PID/ns/net). The socket is created in that namespace;
// no keep-alive, so every request is a new connection.
func HTTPGet(nsPath, url string) (string, error) {
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

// DemoReply is the demo server's text answer.
type DemoReply struct{ Hostname, Version, Client string }

// ParseDemo parses the demo server's text answer.
func ParseDemo(body string) (DemoReply, error) {
	var r DemoReply
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

// CurlFromNodeCgroup sends n requests to url from a process inside the
// host's netns AND inside a cgroup under the node's cgroup parent. With
// --host-lb=false the eBPF socket load balancer is attached to that parent
// only (several nodes share this machine's root cgroup), so this is where a
// VIP is translated — the same place a container's processes live. It
// returns the hostnames that answered, in order ("" for a failed request).
func (h *Host) CurlFromNodeCgroup(t testing.TB, url string, n int) ([]string, string) {
	t.Helper()
	probe := filepath.Join(h.C.Cg2, h.Cgroup, "e2e-probe")
	if err := os.MkdirAll(probe, 0o755); err != nil {
		t.Fatalf("probe cgroup: %v", err)
	}
	script := fmt.Sprintf(`echo $$ > %s/cgroup.procs || exit 90
for i in $(seq %d); do curl -s --max-time 2 %s || echo "curl-exit: $?"; echo; echo "---"; done`, probe, n, url)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(n)*3*time.Second+10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", "--net="+h.NSPath(), "--", "sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("probe client in %s: %v\n%s", probe, err, out)
	}
	var hosts []string
	for _, part := range strings.Split(string(out), "---") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		r, err := ParseDemo(part)
		if err != nil {
			hosts = append(hosts, "")
			continue
		}
		hosts = append(hosts, r.Hostname)
	}
	return hosts, string(out)
}

// CurlFromNodeCgroupQuiet is CurlFromNodeCgroup with a pause between
// requests and no t (it runs in a goroutine while the test kills things).
func (h *Host) CurlFromNodeCgroupQuiet(vip string, n int, pause time.Duration) ([]string, string) {
	probe := filepath.Join(h.C.Cg2, h.Cgroup, "e2e-probe")
	if err := os.MkdirAll(probe, 0o755); err != nil {
		return nil, err.Error()
	}
	url := "http://" + net.JoinHostPort(vip, "80") + "/"
	script := fmt.Sprintf(`echo $$ > %s/cgroup.procs || exit 90
for i in $(seq %d); do curl -s --max-time 2 %s || echo "curl-exit: $?"; echo; echo "---"; sleep %g; done`, probe, n, url, pause.Seconds())
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(n)*(3*time.Second+pause)+10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", "--net="+h.NSPath(), "--", "sh", "-c", script).CombinedOutput()
	if err != nil {
		return nil, fmt.Sprintf("%v\n%s", err, out)
	}
	var hosts []string
	for _, part := range strings.Split(string(out), "---") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		r, _ := ParseDemo(part)
		hosts = append(hosts, r.Hostname)
	}
	return hosts, string(out)
}

// Scrape fetches a host's /metrics from inside its netns.
func (h *Host) Scrape() (string, error) {
	return HTTPGet(h.NSPath(), fmt.Sprintf("http://127.0.0.1:%d/metrics", MetricsPort))
}

// VMRSS reads a process's resident set from /proc/PID/status.
func VMRSS(pid int) string {
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

// Tail is the last n bytes of s.
func Tail(s string, n int) string { return tail(s, n) }

// ---- the binary and the demo image, built once per test binary ----

var (
	buildOnce sync.Once
	buildDir  string
	binPath   string
	imgPath   string
	buildErr  error
)

// build takes WARREN_BIN and WARREN_DEMO_IMAGE (what make passes) and
// builds what is missing into a temporary directory.
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
	buildDir, buildErr = os.MkdirTemp("", "warren-ktest-")
	if buildErr != nil {
		return
	}
	root, err := ModuleRoot()
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

// ModuleRoot is the directory of go.mod above the working directory.
func ModuleRoot() (string, error) {
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

// WarrenBinary is the warren binary under test, built once if WARREN_BIN
// is not set.
func WarrenBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(build)
	if buildErr != nil {
		t.Fatalf("build warren: %v", buildErr)
	}
	return binPath
}

// DemoImage is the demo image archive, built once if WARREN_DEMO_IMAGE is
// not set.
func DemoImage(t testing.TB) string {
	t.Helper()
	buildOnce.Do(build)
	if buildErr != nil {
		t.Fatalf("build demo image: %v", buildErr)
	}
	File(t, imgPath, "demo image archive")
	return imgPath
}

// RemoveBuild deletes what WarrenBinary and DemoImage built; TestMain
// calls it after the tests.
func RemoveBuild() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}
