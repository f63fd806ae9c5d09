//go:build linux

package sim

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/warrenhq/warren/controlplane/ca"
	"github.com/warrenhq/warren/controlplane/client"
)

// Manager is one warren manager process on loopback.
type Manager struct {
	Name    string
	Dir     string
	API     string // host:port of the API and raft
	Metrics string // host:port of /metrics
	args    []string
	cmd     *exec.Cmd
	log     *os.File
}

// Cluster is three (or more) manager processes and an admin client.
type Cluster struct {
	bin      string
	Managers []*Manager
	// Admin talks to every manager with the administrator certificate,
	// over mTLS like a remote CLI.
	Admin *client.Client
	// AdminDir holds the administrator's certificate, key and the CA.
	AdminDir    string
	WorkerToken string
	hc          *http.Client
	env         []string // added to the managers' environment
}

// StartCluster starts managers warren processes under dir: the first runs
// `cluster init`, the others join it with the manager token.
// raftTimeout, when not 0, is the managers' --raft-timeout; nodeDownGrace
// their --node-down-grace (0: 30s).
func StartCluster(ctx context.Context, bin, dir string, managers int, podCIDR string, raftTimeout, nodeDownGrace time.Duration) (*Cluster, error) {
	if nodeDownGrace == 0 {
		nodeDownGrace = 30 * time.Second
	}
	c := &Cluster{bin: bin, hc: &http.Client{Timeout: 5 * time.Second}, env: []string{"WARREN_PPROF=1"}}
	if raftTimeout > 0 {
		c.env = append(c.env, "WARREN_RAFT_TIMEOUT="+raftTimeout.String())
	}
	for i := range managers {
		api, err := freeAddr()
		if err != nil {
			return nil, err
		}
		met, err := freeAddr()
		if err != nil {
			return nil, err
		}
		agentAddr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		m := &Manager{Name: fmt.Sprintf("m%d", i+1), Dir: filepath.Join(dir, fmt.Sprintf("m%d", i+1)), API: api, Metrics: met}
		// No registry: the scenarios' images (warren/demo:*) are never
		// pulled, and resolving them at Docker Hub would only add a
		// failed lookup to every service write the bench times.
		common := []string{"--manager-only", "--advertise-addr", api, "--listen-addr", api, "--metrics-addr", met, "--agent-listen-addr", agentAddr, "--registry-pull=false"}
		if i == 0 {
			m.args = append([]string{"--data-dir", m.Dir, "cluster", "init", "--pod-cidr", podCIDR, "--node-down-grace", nodeDownGrace.String()}, common...)
		}
		c.Managers = append(c.Managers, m)
	}
	first := c.Managers[0]
	if err := c.start(first); err != nil {
		return nil, err
	}
	if err := c.waitAPI(ctx, first); err != nil {
		c.Stop()
		return nil, err
	}
	c.AdminDir = filepath.Join(first.Dir, "admin")
	var err error
	if c.Admin, err = adminClient(c.AdminDir, c.APIAddrs()); err != nil {
		c.Stop()
		return nil, err
	}
	tokens, err := c.Admin.JoinTokens(ctx)
	if err != nil {
		c.Stop()
		return nil, fmt.Errorf("join tokens: %w", err)
	}
	var managerToken string
	for _, t := range tokens {
		switch t.Role {
		case "worker":
			c.WorkerToken = t.Token
		case "manager":
			managerToken = t.Token
		}
	}
	if c.WorkerToken == "" || managerToken == "" {
		c.Stop()
		return nil, fmt.Errorf("join tokens: want a worker and a manager token, got %d tokens", len(tokens))
	}
	for _, m := range c.Managers[1:] {
		m.args = []string{"--data-dir", m.Dir, "cluster", "join", "--token", managerToken,
			"--manager-only", "--advertise-addr", m.API, "--listen-addr", m.API, "--metrics-addr", m.Metrics,
			"--agent-listen-addr", mustFreeAddr(), first.API}
		if err := c.start(m); err != nil {
			c.Stop()
			return nil, err
		}
		if err := c.waitAPI(ctx, m); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, c.waitVoters(ctx, len(c.Managers))
}

func (c *Cluster) start(m *Manager) error {
	if err := os.MkdirAll(m.Dir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(filepath.Dir(m.Dir), m.Name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.bin, m.args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), c.env...)
	// Its own process group, so a kill reaches everything it started.
	// Pdeathsig: a bench that dies (panic, timeout) takes its managers along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start manager %s: %w", m.Name, err)
	}
	m.cmd, m.log = cmd, f
	return nil
}

// PID is the manager's process ID, 0 when it is not running.
func (m *Manager) PID() int {
	if m.cmd == nil || m.cmd.Process == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

// Kill stops manager i with SIGKILL, as a crash would.
func (c *Cluster) Kill(i int) {
	m := c.Managers[i]
	if m.cmd == nil {
		return
	}
	_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	_ = m.cmd.Wait()
	m.log.Close()
	m.cmd = nil
}

// Restart starts manager i again on its data directory (it resumes).
func (c *Cluster) Restart(ctx context.Context, i int) error {
	m := c.Managers[i]
	if err := c.start(m); err != nil {
		return err
	}
	return c.waitAPI(ctx, m)
}

// Stop ends every manager (SIGTERM, then SIGKILL after 10s).
func (c *Cluster) Stop() {
	for _, m := range c.Managers {
		if m.cmd == nil {
			continue
		}
		_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = m.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		m.log.Close()
		m.cmd = nil
	}
}

func (c *Cluster) waitAPI(ctx context.Context, m *Manager) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := c.Scrape(m); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(filepath.Dir(m.Dir), m.Name+".log"))
			return fmt.Errorf("manager %s: no /metrics within 60s:\n%s", m.Name, tail(log, 4000))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitVoters waits until the leader counts n reachable voters.
func (c *Cluster) waitVoters(ctx context.Context, n int) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		if i, err := c.Leader(); err == nil {
			s, err := c.Scrape(c.Managers[i])
			if err == nil && s["warren_raft_voters"] >= float64(n) && s["warren_raft_voters_reachable"] >= float64(n) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster: %d reachable voters not reached within 60s", n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Leader returns the index of the manager reporting warren_raft_is_leader 1.
func (c *Cluster) Leader() (int, error) {
	for i, m := range c.Managers {
		if m.cmd == nil {
			continue
		}
		s, err := c.Scrape(m)
		if err == nil && s["warren_raft_is_leader"] == 1 {
			return i, nil
		}
	}
	return -1, errors.New("no manager reports itself leader")
}

// Scrape reads m's /metrics into series → value; a series is the metric
// name with its labels as exposed (warren_cluster_tasks{state="running"}),
// and the bare name holds the sum over its label sets.
func (c *Cluster) Scrape(m *Manager) (map[string]float64, error) {
	resp, err := c.hc.Get("http://" + m.Metrics + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", m.Name, resp.Status)
	}
	return parseMetrics(bufio.NewScanner(resp.Body))
}

func parseMetrics(sc *bufio.Scanner) (map[string]float64, error) {
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	out := map[string]float64{}
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		series := line[:sp]
		out[series] = v
		if b := strings.IndexByte(series, '{'); b > 0 {
			out[series[:b]] += v
		}
	}
	return out, sc.Err()
}

// Profile saves m's /debug/pprof/<kind> (e.g. "profile?seconds=10",
// "heap") to path.
func (c *Cluster) Profile(m *Manager, kind, path string) error {
	hc := &http.Client{Timeout: 2 * time.Minute}
	resp, err := hc.Get("http://" + m.Metrics + "/debug/pprof/" + kind)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s of %s: %s", kind, m.Name, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func mustFreeAddr() string {
	a, err := freeAddr()
	if err != nil {
		panic(err)
	}
	return a
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// procStat is a process's CPU time (user+system) and resident memory.
type procStat struct {
	CPU time.Duration
	RSS int64 // bytes
}

func readProc(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name may hold spaces; the fields start after its ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 22 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	rss, _ := strconv.ParseInt(f[21], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return procStat{CPU: time.Duration(ut+st) * time.Second / ticks, RSS: rss * int64(os.Getpagesize())}, nil
}

// APIAddrs are the managers' API addresses.
func (c *Cluster) APIAddrs() []string {
	addrs := make([]string, len(c.Managers))
	for i, m := range c.Managers {
		addrs[i] = m.API
	}
	return addrs
}

// adminClient is a client to addrs with the administrator's credentials in
// dir, over mTLS like a remote CLI.
func adminClient(dir string, addrs []string) (*client.Client, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "admin.crt"), filepath.Join(dir, "admin.key"))
	if err != nil {
		return nil, fmt.Errorf("admin credentials in %s: %w", dir, err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	verifier, err := ca.LoadVerifier(caPEM)
	if err != nil {
		return nil, err
	}
	cfg := ca.ClientConfig(verifier, nil, ca.ManagerServerName)
	cfg.Certificates = []tls.Certificate{cert}
	return client.New(client.Config{Addrs: addrs, TLS: cfg, Timeout: 30 * time.Second})
}
