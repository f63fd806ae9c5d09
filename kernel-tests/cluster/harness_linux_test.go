//go:build linux

package clustertest

import (
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/testutil"
	"github.com/warrenhq/warren/kernel-tests/ktest"
)

// The cluster harness lives in kernel-tests/ktest (cluster_linux.go),
// shared with kernel-tests/reliability. This file keeps the names the tests
// of this package have always called — lower-case fields and methods —
// as thin forwards, so a test written against the old harness compiles
// unchanged.

// names keeps this suite's namespaces, interfaces, cgroups and LAN apart
// from kernel-tests/reliability's.
var names = ktest.ClusterNames{Prefix: "wke", WireGuard: "wkg", Bridge: "wkb", Containerd: "e2e", LANBase: 100, LANSpread: 100}

// seq is the harness's name counter.
var seq = &ktest.Seq

func uniq(prefix string) string { return ktest.Uniq(prefix) }

func ifName(prefix string) string { return ktest.IfName(prefix) }

const metricsPort = ktest.MetricsPort

// cluster is a set of hosts on one switch.
type cluster struct {
	*ktest.Cluster
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
	*ktest.Host
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
	args    []string // the last start command, for restarts
}

// newCluster builds n hosts on a switch and starts each host's containerd.
// Warren itself is started by init and join.
func newCluster(t *testing.T, n int) *cluster {
	t.Helper()
	kc := ktest.NewCluster(t, n, names)
	c := &cluster{Cluster: kc, t: t, bin: kc.Bin, image: kc.Image, dir: kc.Dir, sw: kc.Switch, prefix: kc.Prefix, cg2: kc.Cg2}
	for _, kh := range kc.Hosts {
		c.hosts = append(c.hosts, &host{Host: kh, c: c, name: kh.Name, netns: kh.Netns, ip: kh.IP, dataDir: kh.DataDir,
			ctd: kh.Ctd, ctdNS: kh.CtdNS, cgroup: kh.Cgroup, wg: kh.WG, bridge: kh.Bridge, logPath: kh.LogPath})
	}
	return c
}

// k is the shared host, told first which binary to run: a test may point
// c.bin at another build (the upgrade test starts the old release).
func (h *host) k() *ktest.Host {
	if h.c.Bin != h.c.bin {
		h.c.Bin = h.c.bin
	}
	return h.Host
}

func newNetns(t *testing.T, tag string) string {
	t.Helper()
	return ktest.NewNetns(t, names.Prefix, tag)
}

func (h *host) nsPath() string          { return h.NSPath() }
func (h *host) nodeFlags() []string     { return h.NodeFlags() }
func (h *host) start(args ...string)    { h.c.t.Helper(); h.args = args; h.k().Start(args...) }
func (h *host) pid() int                { return h.PID() }
func (h *host) running() bool           { return h.Running() }
func (h *host) stop(sig syscall.Signal) { h.Stop(sig) }
func (h *host) stopAndReport()          { h.StopAndReport() }
func (h *host) removeLeftovers()        { h.RemoveLeftovers() }

func cgroupMounts() []string      { return ktest.CgroupMounts() }
func removeCgroupTree(dir string) { ktest.RemoveCgroupTree(dir) }

func (h *host) cli(args ...string) (string, error)       { return h.k().CLI(args...) }
func (h *host) mustCLI(args ...string) string            { h.c.t.Helper(); return h.k().MustCLI(args...) }
func (h *host) cliJSON(v any, args ...string) error      { return h.k().CLIJSON(v, args...) }
func (h *host) nodes() ([]api.Node, error)               { return h.k().Nodes() }
func (h *host) tasks(svc string) ([]api.Task, error)     { return h.k().Tasks(svc) }
func (h *host) service(name string) (api.Service, error) { return h.k().Service(name) }
func (h *host) info() (client.ClusterInfo, error)        { return h.k().Info() }
func (h *host) nodeID(t *testing.T) string               { t.Helper(); return h.NodeID(t) }

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

func (c *cluster) waitReady(h, mgr *host, within time.Duration) {
	c.t.Helper()
	c.WaitReady(h.k(), mgr.k(), within)
}

func (c *cluster) hostOfNode(t *testing.T, nodeID string) *host {
	t.Helper()
	kh := c.HostOfNode(nodeID)
	for _, h := range c.hosts {
		if kh != nil && h.Host == kh {
			return h
		}
	}
	return nil
}

func runningTasks(ts []api.Task) []api.Task { return ktest.RunningTasks(ts) }

func (c *cluster) waitRunning(mgr *host, svc string, n int, within time.Duration, extra func([]api.Task) error) []api.Task {
	c.t.Helper()
	return c.WaitRunning(mgr.k(), svc, n, within, extra)
}

func lineHas(out string, words ...string) bool   { return ktest.LineHas(out, words...) }
func describeTasks(ts []api.Task) string         { return ktest.DescribeTasks(ts) }
func short(id string) string                     { return ktest.Short(id) }
func httpGet(nsPath, url string) (string, error) { return ktest.HTTPGet(nsPath, url) }

// demoReply is the demo server's text answer.
type demoReply = ktest.DemoReply

func parseDemo(body string) (demoReply, error) { return ktest.ParseDemo(body) }

func (h *host) curlFromNodeCgroup(t *testing.T, url string, n int) ([]string, string) {
	t.Helper()
	return h.CurlFromNodeCgroup(t, url, n)
}

func (h *host) curlFromNodeCgroupQuiet(vip string, n int, pause time.Duration) ([]string, string) {
	return h.CurlFromNodeCgroupQuiet(vip, n, pause)
}

func (h *host) scrape() (string, error) { return h.Scrape() }
func vmRSS(pid int) string              { return ktest.VMRSS(pid) }

// eventually is the repository's one polling helper, named as these tests
// have always called it; errStop (testutil.Stop) ends it early when
// retrying cannot help.
var (
	eventually = testutil.Eventually[func() error]
	errStop    = testutil.Stop
)

func tail(s string, n int) string { return ktest.Tail(s, n) }

func moduleRoot() (string, error)      { return ktest.ModuleRoot() }
func warrenBinary(t *testing.T) string { t.Helper(); return ktest.WarrenBinary(t) }
func demoImage(t *testing.T) string    { t.Helper(); return ktest.DemoImage(t) }

func TestMain(m *testing.M) {
	code := m.Run()
	ktest.RemoveBuild()
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
