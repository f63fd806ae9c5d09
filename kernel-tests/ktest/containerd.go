package ktest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// ContainerdOptions configure a private containerd started by StartContainerd.
type ContainerdOptions struct {
	// CRI enables containerd's CRI plugin; it is disabled otherwise because it
	// needs CNI binaries and a sandbox image that most tests do not have.
	CRI          bool
	CNIBinDir    string
	CNIConfDir   string
	SandboxImage string // default "warren/pause:v1"
	// NetNS runs containerd inside /run/netns/NetNS (via nsenter --net) so
	// that shims and containers it starts inherit that network namespace.
	NetNS string
	// Tag is a short name used in paths; defaults to "ctd".
	Tag string
	// Timeout bounds how long to wait for the socket; default 20s.
	Timeout time.Duration
}

// Containerd is a running private containerd.
type Containerd struct {
	Socket string
	Root   string
	State  string
	Dir    string // parent of Root and State; also holds config.toml and containerd.log
	Cmd    *exec.Cmd

	argv    []string
	logf    *os.File
	timeout time.Duration
	exited  chan error
}

var containerdSeq atomic.Int32

// StartContainerd starts containerd with its own root, state, socket and
// config, waits until its socket answers and stops it in t.Cleanup. The
// process runs in its own process group so stopping it reaches nothing else.
//
// Paths live under /run (short: unix socket paths are limited to 108 bytes)
// and include the pid and a sequence number, so parallel runs do not meet.
func StartContainerd(t testing.TB, o ContainerdOptions) *Containerd {
	t.Helper()
	Root(t)
	bin := Binary(t, "containerd")
	Binary(t, "runc")
	Binary(t, "containerd-shim-runc-v2")
	if o.Tag == "" {
		o.Tag = "ctd"
	}
	if o.Timeout == 0 {
		o.Timeout = 20 * time.Second
	}
	if o.SandboxImage == "" {
		o.SandboxImage = "warren/pause:v1"
	}
	dir := fmt.Sprintf("/run/wk-%s-%d-%d", o.Tag, os.Getpid(), containerdSeq.Add(1))
	c := &Containerd{
		Dir:    dir,
		Root:   filepath.Join(dir, "root"),
		State:  filepath.Join(dir, "state"),
		Socket: filepath.Join(dir, "c.sock"),
	}
	for _, d := range []string{c.Root, c.State} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			t.Fatalf("containerd dirs: %v", err)
		}
	}
	cfg := containerdConfig(c, o)
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatalf("containerd config: %v", err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatalf("containerd log: %v", err)
	}
	args := []string{"--config", cfgPath}
	if o.NetNS != "" {
		File(t, "/run/netns/"+o.NetNS, "network namespace for containerd")
		args = append([]string{"--net=/run/netns/" + o.NetNS, "--", bin}, args...)
		bin = Binary(t, "nsenter")
	}
	c.argv = append([]string{bin}, args...)
	c.logf = logf
	c.timeout = o.Timeout

	t.Cleanup(func() {
		c.stop()
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logf.Name()); err == nil {
				t.Logf("containerd log (tail):\n%s", tail(string(b), 4000))
			}
		}
		cleanupContainerdDirs(c)
	})
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	return c
}

// Restart stops containerd and starts it again on the same root, state and
// socket. Shims and containers keep running (they are in their own process
// groups), as when an operator restarts containerd on a node.
func (c *Containerd) Restart(t testing.TB) {
	t.Helper()
	c.stop()
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
}

func (c *Containerd) start() error {
	cmd := exec.Command(c.argv[0], c.argv[1:]...)
	cmd.Stdout = c.logf
	cmd.Stderr = c.logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	c.Cmd, c.exited = cmd, exited

	deadline := time.Now().Add(c.timeout)
	for {
		conn, err := net.DialTimeout("unix", c.Socket, 500*time.Millisecond)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case err := <-exited:
			c.Cmd = nil
			b, _ := os.ReadFile(c.logf.Name())
			return fmt.Errorf("containerd exited before its socket answered: %v\n%s", err, tail(string(b), 4000))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(c.logf.Name())
			return fmt.Errorf("containerd socket %s did not answer within %s\n%s", c.Socket, c.timeout, tail(string(b), 4000))
		}
	}
}

func containerdConfig(c *Containerd, o ContainerdOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version = 2\nroot = %q\nstate = %q\n", c.Root, c.State)
	if !o.CRI {
		b.WriteString("disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n")
	}
	fmt.Fprintf(&b, "\n[grpc]\n  address = %q\n", c.Socket)
	fmt.Fprintf(&b, "\n[ttrpc]\n  address = %q\n", c.Socket+".ttrpc")
	b.WriteString("\n[debug]\n  address = \"\"\n  level = \"info\"\n")
	b.WriteString("\n[metrics]\n  address = \"\"\n")
	fmt.Fprintf(&b, "\n[plugins.\"io.containerd.internal.v1.opt\"]\n  path = %q\n", filepath.Join(c.Root, "opt"))
	// Root here lacks CAP_SYS_RESOURCE, so the CRI plugin must not try to
	// lower OOM scores below containerd's own.
	b.WriteString("\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  restrict_oom_score_adj = true\n")
	fmt.Fprintf(&b, "  sandbox_image = %q\n", o.SandboxImage)
	if o.CRI {
		fmt.Fprintf(&b, "\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\n  bin_dir = %q\n  conf_dir = %q\n", o.CNIBinDir, o.CNIConfDir)
	}
	return b.String()
}

func (c *Containerd) stop() {
	if c.Cmd == nil || c.Cmd.Process == nil {
		return
	}
	exited := c.exited
	defer func() { c.Cmd = nil }()
	pgid := c.Cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
	}
}

// cleanupContainerdDirs kills shims left by tests (they outlive containerd by
// design), unmounts anything under the directory and removes it.
func cleanupContainerdDirs(c *Containerd) {
	killShims(c.Socket)
	// Unmount rootfs and shm mounts that a killed shim may have left.
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		var mnts []string
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 4 && strings.HasPrefix(f[4], c.Dir+"/") {
				mnts = append(mnts, f[4])
			}
		}
		for i := len(mnts) - 1; i >= 0; i-- {
			detachUnmount(mnts[i])
		}
	}
	_ = os.RemoveAll(c.Dir)
}

// killShims kills containerd-shim processes started for this containerd
// (their command line names its socket) and the containers they run.
func killShims(socket string) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, e := range ents {
		pid := 0
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid <= 1 {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) == 0 || !strings.Contains(args[0], "containerd-shim") {
			continue
		}
		if !strings.Contains(string(cmdline), socket) {
			continue
		}
		// Children first: the shim reaps them, and an orphaned container init
		// would otherwise be re-parented and linger.
		if kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)); err == nil {
			for _, k := range strings.Fields(string(kids)) {
				var kp int
				if _, err := fmt.Sscanf(k, "%d", &kp); err == nil {
					_ = syscall.Kill(kp, syscall.SIGKILL)
				}
			}
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
		for ctx.Err() == nil {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
