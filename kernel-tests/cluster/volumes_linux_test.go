//go:build linux

package clustertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/kernel-tests/ktest"
)

const voltestRef = "warren/voltest:v1"

// loadVoltest builds the voltest task (kernel-tests/cluster/voltest),
// packs it as an image and loads it into the cluster through h.
func loadVoltest(t *testing.T, h *host) {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "voltest")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./kernel-tests/cluster/voltest")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build voltest: %v\n%s", err, out)
	}
	img := filepath.Join(dir, "voltest.tar")
	if out, err := exec.Command(h.c.bin, "image", "pack", "--binary", bin, "--name", voltestRef, "--expose", "80/tcp", "-o", img).CombinedOutput(); err != nil {
		t.Fatalf("pack voltest: %v\n%s", err, out)
	}
	h.mustCLI("image", "load", "-i", img)
}

func readCounter(dir string) int {
	b, _ := os.ReadFile(filepath.Join(dir, "counter"))
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func readFirst(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "first"))
	return strings.TrimSpace(string(b))
}

// waitCounterPast waits until the volume's counter (written every 100 ms by
// the running task) is beyond n, and returns it.
func waitCounterPast(t *testing.T, what, dir string, n int) int {
	t.Helper()
	var got int
	eventually(t, what, 60*time.Second, func() error {
		if got = readCounter(dir); got <= n {
			return fmt.Errorf("counter %d, want > %d", got, n)
		}
		return nil
	})
	return got
}

var foundRE = regexp.MustCompile(`found (\d+)`)

// foundValues are the counters the service's tasks found when they started.
func foundValues(h *host, svc string) []int {
	out, _ := h.cli("service", "logs", svc)
	var ns []int
	for _, m := range foundRE.FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(m[1])
		ns = append(ns, n)
	}
	return ns
}

// waitFound waits until a task of svc logged that it found at least n:
// it read the data an earlier task wrote.
func waitFound(t *testing.T, h *host, svc string, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("a task of %s found counter ≥ %d", svc, n), 60*time.Second, func() error {
		vs := foundValues(h, svc)
		if slices.ContainsFunc(vs, func(v int) bool { return v >= n }) {
			return nil
		}
		return fmt.Errorf("found values %v", vs)
	})
}

// taskName is the hostname a task's container gets (its ID cut to 63).
// taskName is the hostname a task's container gets: its 12-character short
// ID, as in Swarm.
func taskName(id string) string { return short(id) }

// TestVolumeLocal: a local volume's data survives a task restart, task
// replacement, a warren restart and a simulated node reboot; it is refused removal while
// in use; bad input is refused; a readonly mount makes writes fail with
// EROFS in the task while warren stays healthy.
func TestVolumeLocal(t *testing.T) {
	ktest.Binary(t, "ctr")
	ktest.Binary(t, "go")
	c := newCluster(t, 1)
	h := c.hosts[0]
	c.init(h)
	loadVoltest(t, h)
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range []string{"pg", "reader"} {
				out, _ := h.cli("service", "ps", "--all", s)
				logs, _ := h.cli("service", "logs", s)
				t.Logf("service ps --all %s:\n%s\nlogs:\n%s", s, out, tail(logs, 3000))
			}
		}
	})

	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"volume", "create", "a/b"}, `volume name "a/b": must not contain '/'`},
		{[]string{"volume", "create", "x", "--driver", "nfs"}, `volume "x": driver "nfs": unknown; no node reports it`},
		{[]string{"service", "create", "bad", "--image", voltestRef, "--mount", "type=volume,source=db,target=data"}, "target must be an absolute path"},
	} {
		if _, err := h.cli(bad.args...); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Fatalf("warren %v: err = %v, want %q", bad.args, err, bad.want)
		}
	}
	var vols []api.Volume
	if err := h.cliJSON(&vols, "volume", "ls"); err != nil || len(vols) != 0 {
		t.Fatalf("refused input stored volumes: %+v (%v)", vols, err)
	}

	h.mustCLI("volume", "create", "db", "--label", "app=pg")
	h.mustCLI("service", "create", "pg", "--image", voltestRef, "--port", "80",
		"--mount", "type=volume,source=db,target=/data", "--restart-delay", "100ms", "--timeout", "2m")
	run := c.waitRunning(h, "pg", 1, 2*time.Minute, nil)
	volDir := filepath.Join(h.dataDir, "volumes", "db")
	n := waitCounterPast(t, "the first task writes into the volume", volDir, 10)
	firstTask := taskName(run[0].ID)
	if got := readFirst(volDir); got != firstTask {
		t.Fatalf("first = %q, want the first task %q", got, firstTask)
	}
	if err := h.cliJSON(&vols, "volume", "ls"); err != nil || len(vols) != 1 || vols[0].Status.Node != h.nodeID(t) {
		t.Fatalf("volume ls = %+v (%v), want db on %s", vols, err, h.nodeID(t))
	}

	// rm while in use is refused, naming the service.
	if _, err := h.cli("volume", "rm", "db"); err == nil || !strings.Contains(err.Error(), `volume "db" is in use by services pg`) {
		t.Fatalf("rm in use: %v", err)
	}

	// Task restart: the process dies and the node restarts it in place.
	pids := h.runningPIDs(t)
	if len(pids) != 1 {
		t.Fatalf("%d task processes, want 1", len(pids))
	}
	_ = syscall.Kill(pids[0], syscall.SIGKILL)
	eventually(t, "the crashed task restarted", 30*time.Second, func() error {
		if now := h.runningPIDs(t); len(now) != 1 || now[0] == pids[0] {
			return fmt.Errorf("pids %v (killed %d)", now, pids[0])
		}
		return nil
	})
	waitFound(t, h, "pg", n)
	n = waitCounterPast(t, "the restarted task writes on", volDir, n)

	// Task replacement: a new task (new spec) finds the data.
	h.mustCLI("service", "update", "pg", "--env", "GEN=2", "--timeout", "2m")
	run = c.waitRunning(h, "pg", 1, 2*time.Minute, func(ts []api.Task) error {
		if taskName(ts[0].ID) == firstTask {
			return fmt.Errorf("still the first task")
		}
		return nil
	})
	waitFound(t, h, "pg", n)
	n = waitCounterPast(t, "the replacement writes on", volDir, n)

	// warren restart: the task keeps running and writing, and is adopted.
	h.stop(syscall.SIGTERM)
	h.start(h.args...)
	c.waitReady(h, h, 90*time.Second)
	c.waitRunning(h, "pg", 1, 2*time.Minute, nil)
	n = waitCounterPast(t, "writes go on after the warren restart", volDir, n)

	// Simulated node reboot: warren and every task process die; the data
	// is there when they come back.
	h.stop(syscall.SIGKILL)
	for _, p := range h.runningPIDs(t) {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	eventually(t, "tasks dead after the simulated reboot", 20*time.Second, func() error {
		if k := len(h.runningPIDs(t)); k != 0 {
			return fmt.Errorf("%d still running", k)
		}
		return nil
	})
	atReboot := readCounter(volDir)
	h.start(h.args...)
	c.waitReady(h, h, 90*time.Second)
	c.waitRunning(h, "pg", 1, 2*time.Minute, nil)
	waitFound(t, h, "pg", atReboot)
	waitCounterPast(t, "writes go on after the reboot", volDir, atReboot)
	if got := readFirst(volDir); got != firstTask {
		t.Fatalf("first = %q after replacement, restart and reboot, want %q", got, firstTask)
	}

	// A new volume gets the image's content at the target and its
	// directory's mode (/tmp is 1777 in the image, a new volume 0755);
	// volume-nocopy keeps it empty and as created.
	h.mustCLI("service", "create", "cp", "--image", voltestRef, "--port", "80",
		"--mount", "etc-copy:/etc", "--mount", "type=volume,source=tmp-copy,target=/tmp", "--timeout", "2m")
	h.mustCLI("service", "create", "nocp", "--image", voltestRef, "--port", "80",
		"--mount", "type=volume,source=etc-nocopy,target=/etc,volume-nocopy",
		"--mount", "type=volume,source=tmp-nocopy,target=/tmp,volume-nocopy", "--timeout", "2m")
	c.waitRunning(h, "cp", 1, 2*time.Minute, nil)
	c.waitRunning(h, "nocp", 1, 2*time.Minute, nil)
	vols2 := filepath.Join(h.dataDir, "volumes")
	if b, err := os.ReadFile(filepath.Join(vols2, "etc-copy", "group")); err != nil || !strings.HasPrefix(string(b), "root:x:0:") {
		t.Fatalf("etc-copy/group = %q, %v: the image's /etc was not copied", b, err)
	}
	if fi, err := os.Stat(filepath.Join(vols2, "tmp-copy")); err != nil || fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
		t.Fatalf("tmp-copy mode = %v, %v; want the image's /tmp 1777", fi.Mode(), err)
	}
	if _, err := os.Stat(filepath.Join(vols2, "etc-nocopy", "group")); err == nil {
		t.Fatal("volume-nocopy volume got the image's /etc/group")
	}
	if fi, err := os.Stat(filepath.Join(vols2, "tmp-nocopy")); err != nil || fi.Mode()&os.ModeSticky != 0 {
		t.Fatalf("tmp-nocopy mode = %v, %v; want the new volume's own 0755", fi.Mode(), err)
	}

	// Readonly: the task's writes fail with EROFS, warren stays healthy.
	h.mustCLI("volume", "create", "shared-ro", "--shared")
	h.mustCLI("service", "create", "reader", "--image", voltestRef, "--port", "80",
		"--mount", "shared-ro:/data:ro", "--restart-delay", "100ms", "--timeout", "2m")
	c.waitRunning(h, "reader", 1, 2*time.Minute, nil)
	eventually(t, "the readonly task reports EROFS", 60*time.Second, func() error {
		out, err := h.cli("service", "logs", "reader")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "probe error:") || !strings.Contains(out, "read-only file system") {
			return fmt.Errorf("logs: %s", tail(out, 500))
		}
		return nil
	})
	c.waitReady(h, h, 30*time.Second)
	c.waitRunning(h, "pg", 1, time.Minute, nil)

	// Removing the service frees the volume; rm then works, and the data
	// stays on the node.
	h.mustCLI("service", "rm", "pg")
	eventually(t, "volume rm once pg is gone", 30*time.Second, func() error {
		_, err := h.cli("volume", "rm", "db")
		return err
	})
	if readFirst(volDir) != firstTask {
		t.Fatal("volume rm deleted the data on the node")
	}
}

// storage is an sshd in a netns of its own on the cluster's switch.
type storage struct {
	ip, netns, dir, export, key, knownHosts string
	cmd                                     *exec.Cmd
}

func startStorage(t *testing.T, c *cluster) *storage {
	t.Helper()
	sshd := ktest.Binary(t, "sshd")
	keygen := ktest.Binary(t, "ssh-keygen")
	s := &storage{ip: c.prefix + "50", netns: newNetns(t, "st"), dir: t.TempDir()}
	ktest.Run(t, "ip", "-n", c.sw, "link", "add", "pst", "type", "veth", "peer", "name", "eth0", "netns", s.netns)
	ktest.Run(t, "ip", "-n", c.sw, "link", "set", "pst", "master", "br0", "up")
	ktest.Run(t, "ip", "-n", s.netns, "addr", "add", s.ip+"/24", "dev", "eth0")
	ktest.Run(t, "ip", "-n", s.netns, "link", "set", "eth0", "up")
	s.export = filepath.Join(s.dir, "export")
	s.key = filepath.Join(s.dir, "id")
	s.knownHosts = filepath.Join(s.dir, "known_hosts")
	if err := os.MkdirAll(s.export, 0o755); err != nil {
		t.Fatal(err)
	}
	hostKey := filepath.Join(s.dir, "host_key")
	ktest.Run(t, keygen, "-q", "-t", "ed25519", "-N", "", "-f", hostKey)
	ktest.Run(t, keygen, "-q", "-t", "ed25519", "-N", "", "-f", s.key)
	pub, _ := os.ReadFile(s.key + ".pub")
	hostPub, _ := os.ReadFile(hostKey + ".pub")
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(s.dir, "authorized_keys"), pub, 0o600))
	must(os.WriteFile(s.knownHosts, []byte(s.ip+" "+string(hostPub)), 0o600))
	cfg := filepath.Join(s.dir, "sshd_config")
	must(os.WriteFile(cfg, []byte(strings.Join([]string{
		"ListenAddress " + s.ip, "Port 22", "HostKey " + hostKey, "PidFile " + filepath.Join(s.dir, "sshd.pid"),
		"AuthorizedKeysFile " + filepath.Join(s.dir, "authorized_keys"), "PermitRootLogin prohibit-password",
		"PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
		"Subsystem sftp internal-sftp", "",
	}, "\n")), 0o600))
	must(os.MkdirAll("/run/sshd", 0o755)) // sshd's privilege separation directory
	s.cmd = exec.Command("nsenter", "--net=/run/netns/"+s.netns, "--", sshd, "-D", "-e", "-f", cfg)
	logf, _ := os.Create(filepath.Join(s.dir, "sshd.log"))
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	must(s.cmd.Start())
	t.Cleanup(func() {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		_ = s.cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(s.dir, "sshd.log"))
			t.Logf("sshd log:\n%s", tail(string(b), 3000))
		}
	})
	return s
}

// fuseMounts lists the sshfs mounts below dir.
func fuseMounts(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || !strings.HasPrefix(f[4], dir+"/") {
			continue
		}
		if i := slices.Index(f, "-"); i > 0 && i+1 < len(f) && strings.HasPrefix(f[i+1], "fuse") {
			out = append(out, f[4])
		}
	}
	return out
}

// cleanupSSHFS detaches the test's sshfs mounts and ends the sshfs
// processes that served them (they run detached from warren by design).
func cleanupSSHFS(c *cluster, s *storage) {
	for _, m := range fuseMounts(c.dir) {
		_ = syscall.Unmount(m, syscall.MNT_DETACH)
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		args := strings.Split(string(b), "\x00")
		if len(args) > 1 && filepath.Base(args[0]) == "sshfs" && strings.Contains(string(b), "@"+s.ip+":"+s.export) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// TestVolumeSSHFSFollowsTask: a task on node A writes into an sshfs
// volume; A is drained and the replacement on B reads the same data. The
// storage host then vanishes mid-write: the task's health fails and is
// reported, nothing hangs, and it recovers when the storage returns.
func TestVolumeSSHFSFollowsTask(t *testing.T) {
	ktest.Binary(t, "ctr")
	ktest.Binary(t, "go")
	ktest.Binary(t, "sshfs")
	ktest.File(t, "/dev/fuse", "FUSE for the sshfs volume driver")
	c := newCluster(t, 2)
	h1, h2 := c.hosts[0], c.hosts[1]
	st := startStorage(t, c)
	c.init(h1)
	token := strings.TrimSpace(h1.mustCLI("cluster", "join-token", "worker", "-q"))
	c.join(h2, h1, token)
	// Registered last, so it runs first: no FUSE mount outlives the test.
	t.Cleanup(func() { cleanupSSHFS(c, st) })
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := h1.cli("service", "ps", "--all", "db")
			logs, _ := h1.cli("service", "logs", "db")
			t.Logf("service ps --all db:\n%s\nlogs:\n%s", out, tail(logs, 3000))
		}
	})
	loadVoltest(t, h1)
	eventually(t, "both nodes report the sshfs driver", 60*time.Second, func() error {
		nodes, err := h1.nodes()
		if err != nil {
			return err
		}
		for _, n := range nodes {
			if !slices.ContainsFunc(n.Status.VolumeDrivers, func(d api.VolumeDriverInfo) bool { return d.Name == "sshfs" }) {
				return fmt.Errorf("node %s reports %+v", n.Status.Addr, n.Status.VolumeDrivers)
			}
		}
		return nil
	})
	h1.mustCLI("volume", "create", "shared", "--driver", "sshfs", "--opt", "host="+st.ip, "--opt", "path="+st.export,
		"--opt", "identity="+st.key, "--opt", "known_hosts="+st.knownHosts, "--opt", "alive=1")
	h1.mustCLI("service", "create", "db", "--image", voltestRef, "--port", "80",
		"--mount", "type=volume,source=shared,target=/data", "--restart-delay", "100ms",
		"--health-http", "/healthz", "--health-interval", "2s", "--health-timeout", "2s", "--health-retries", "2",
		"--timeout", "2m")
	run := c.waitRunning(h1, "db", 1, 2*time.Minute, nil)
	a := c.hostOfNode(t, run[0].NodeID)
	b := h1
	if a == h1 {
		b = h2
	}
	first := taskName(run[0].ID)
	n := waitCounterPast(t, "the task on A writes through sshfs to the server", st.export, 10)
	if got := readFirst(st.export); got != first {
		t.Fatalf("first on the server = %q, want %q", got, first)
	}
	if m := fuseMounts(a.dataDir); len(m) != 1 {
		t.Fatalf("sshfs mounts on A: %v, want one", m)
	}

	// Drain A: the replacement lands on B and reads A's data.
	h1.mustCLI("node", "update", "--availability", "drain", a.nodeID(t))
	c.waitRunning(h1, "db", 1, 2*time.Minute, func(ts []api.Task) error {
		if ts[0].NodeID != b.nodeID(t) {
			return fmt.Errorf("running on %s, want B %s", short(ts[0].NodeID), short(b.nodeID(t)))
		}
		return nil
	})
	waitFound(t, h1, "db", n)
	n = waitCounterPast(t, "the replacement on B writes on", st.export, n)
	if got := readFirst(st.export); got != first {
		t.Fatalf("first = %q after the move, want %q", got, first)
	}
	eventually(t, "A unmounted the volume once its task was gone", 30*time.Second, func() error {
		if m := fuseMounts(a.dataDir); len(m) != 0 {
			return fmt.Errorf("still mounted on A: %v", m)
		}
		return nil
	})
	waitHealth := func(want api.HealthState) {
		t.Helper()
		eventually(t, "the task is "+string(want), 90*time.Second, func() error {
			ts, err := h1.tasks("db")
			if err != nil {
				return err
			}
			for _, tk := range runningTasks(ts) {
				if tk.Status.Health == want {
					return nil
				}
			}
			if want == api.HealthUnhealthy {
				// The managers replace an unhealthy task (as Swarm does), often
				// before a poll sees it unhealthy: the stop reason says so.
				for _, tk := range ts {
					if strings.Contains(tk.StopReason, "unhealthy") {
						return nil
					}
				}
			}
			return fmt.Errorf("tasks: %s", describeTasks(ts))
		})
	}
	waitHealth(api.HealthHealthy)

	// The storage host vanishes mid-write.
	ktest.Run(t, "ip", "-n", st.netns, "link", "set", "eth0", "down")
	lost := time.Now()
	waitHealth(api.HealthUnhealthy)
	t.Logf("measured: unhealthy reported %s after the storage host vanished", time.Since(lost).Round(100*time.Millisecond))
	// Nothing hangs: the control plane and the node answer.
	c.waitReady(b, h1, 30*time.Second)
	if _, err := h1.cli("volume", "inspect", "shared"); err != nil {
		t.Fatal(err)
	}

	// The storage returns: the mount reconnects and the task is healthy again.
	ktest.Run(t, "ip", "-n", st.netns, "link", "set", "eth0", "up")
	back := time.Now()
	waitHealth(api.HealthHealthy)
	t.Logf("measured: healthy again %s after the storage returned", time.Since(back).Round(100*time.Millisecond))
	waitCounterPast(t, "writes resume after the storage returned", st.export, readCounter(st.export))
}
