package node

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenhq/warren/kernel-tests/ktest"
)

// proc is the memory of one Warren process, in KiB.
type proc struct {
	role           string // daemon, or the device argument it runs
	pid            int
	rss, anon, pss int
}

// warrenProcs reads the memory of every process whose executable is bin
// and that runs in the network namespace netns (a node's daemon and its
// devices; its tasks have namespaces of their own). VmRSS counts the
// binary's text pages in every process that touched them; PSS
// (smaps_rollup) shares them out, so the PSS of all processes adds up to
// what they use together.
func warrenProcs(b *testing.B, bin, netns string) []proc {
	b.Helper()
	want, err := os.Stat(bin)
	if err != nil {
		b.Fatal(err)
	}
	ns, err := os.Stat("/run/netns/" + netns)
	if err != nil {
		b.Fatal(err)
	}
	var out []proc
	exes, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, exe := range exes {
		fi, err := os.Stat(exe)
		if err != nil || !os.SameFile(fi, want) {
			continue
		}
		dir := filepath.Dir(exe)
		if fi, err := os.Stat(filepath.Join(dir, "ns", "net")); err != nil || !os.SameFile(fi, ns) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(dir))
		p := proc{role: "daemon", pid: pid}
		if cmd, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
			if args := strings.Split(string(cmd), "\x00"); len(args) > 1 && strings.HasPrefix(args[1], "__") {
				p.role = strings.TrimPrefix(args[1], "__")
			}
		}
		status := kibFields(filepath.Join(dir, "status"))
		p.rss, p.anon = status["VmRSS"], status["RssAnon"]
		p.pss = kibFields(filepath.Join(dir, "smaps_rollup"))["Pss"]
		out = append(out, p)
	}
	return out
}

// kibFields reads the "Key:  N kB" lines of a /proc file in one pass.
func kibFields(path string) map[string]int {
	out := map[string]int{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, rest, ok := strings.Cut(sc.Text(), ":")
		if f := strings.Fields(rest); ok && len(f) > 0 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				out[k] = n
			}
		}
	}
	return out
}

// report samples the Warren processes of netns over a window, logs each
// process at the peak and returns the sums of RSS and PSS in KiB and what
// the processes held together (each page once) at that peak, with every
// sample.
func report(b *testing.B, what, bin, netns string) (rss, pss, held int, ss []sample) {
	b.Helper()
	ss = sampleProcs(b, bin, netns)
	top := peak(ss)
	ps := top.ps
	var parts []string
	for _, p := range ps {
		rss += p.rss
		pss += p.pss
		parts = append(parts, fmt.Sprintf("%s rss %.1f anon %.1f pss %.1f", p.role, float64(p.rss)/1024, float64(p.anon)/1024, float64(p.pss)/1024))
	}
	if d := os.Getenv("WARREN_BENCH_SMAPS_DIR"); d != "" {
		// Where the memory is, mapping by mapping, for a closer look.
		for _, p := range ps {
			if m, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", p.pid)); err == nil {
				_ = os.WriteFile(filepath.Join(d, strings.ReplaceAll(what, " ", "-")+"-"+p.role+".smaps"), m, 0o644)
			}
		}
	}
	held = top.held
	b.Logf("%s: %d Warren processes at the peak of %d readings over %s, RSS %.1f MiB, PSS %.1f MiB, together %.1f MiB (%s)", what, len(ps), len(ss), window, float64(rss)/1024, float64(pss)/1024, float64(held)/1024, strings.Join(parts, "; "))
	return rss, pss, held, ss
}

// BenchmarkNodeRSS runs a one-node cluster in a network namespace of its own
// with its own containerd, and reports the resident memory of all Warren
// processes with no task (the baseline), then with 10 and 50 replicas of
// the demo server. The goal is ≤ 60 MiB with 50 tasks.
func BenchmarkNodeRSS(b *testing.B) {
	ktest.Root(b)
	bin, img := os.Getenv("WARREN_BIN"), os.Getenv("WARREN_DEMO_IMAGE")
	if bin == "" || img == "" {
		b.Fatal("WARREN_BIN and WARREN_DEMO_IMAGE are required (make build demo-image)")
	}
	counts := []int{10, 50}
	if os.Getenv("WARREN_BENCH_SMOKE") != "" {
		counts = []int{10}
	}
	for i := 0; i < b.N; i++ {
		tag := fmt.Sprintf("%d-%d", os.Getpid(), i)
		netns := "wbn-" + tag
		ktest.Run(b, "ip", "netns", "add", netns)
		b.Cleanup(func() { ktest.RunQuiet("ip", "netns", "del", netns) })
		ktest.Run(b, "ip", "-n", netns, "link", "set", "lo", "up")
		ktest.Run(b, "ip", "-n", netns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
		ktest.Run(b, "ip", "-n", netns, "addr", "add", "192.168.250.1/24", "dev", "eth0")
		ktest.Run(b, "ip", "-n", netns, "link", "set", "eth0", "up")
		ctd := ktest.StartContainerd(b, ktest.ContainerdOptions{NetNS: netns, Tag: "bn" + tag})
		dir := filepath.Join("/run", "wbn-"+tag)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			b.Fatal(err)
		}
		cg, br, wg := "wbn-"+tag, fmt.Sprintf("wbb%d", os.Getpid()%100000), fmt.Sprintf("wbg%d", os.Getpid()%100000)
		flags := []string{"--data-dir", dir}
		cli := func(args ...string) (string, error) {
			out, err := exec.Command(bin, append(flags, args...)...).CombinedOutput()
			if err != nil {
				return string(out), fmt.Errorf("warren %s: %v: %s", strings.Join(args, " "), err, out)
			}
			return string(out), nil
		}
		logf, err := os.Create(filepath.Join(dir, "..", "wbn-"+tag+".log"))
		if err != nil {
			b.Fatal(err)
		}
		pprofDir := os.Getenv("WARREN_BENCH_PPROF_DIR")
		cmd := exec.Command("nsenter", append([]string{"--net=/run/netns/" + netns, "--", bin}, append(flags,
			"cluster", "init", "--advertise-addr", "192.168.250.1", "--listen-addr", ":2377",
			"--containerd", ctd.Socket, "--containerd-namespace", "wbn-"+tag, "--cgroup-parent", cg,
			"--wireguard-interface", wg, "--bridge", br, "--metrics-addr", "127.0.0.1:9323", "--host-lb=false")...)...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if pprofDir != "" {
			// Sampled finely enough to see a few KiB per task; the
			// collector's trace shows live heap against heap goal.
			cmd.Env = append(os.Environ(), "WARREN_PPROF=1", "GODEBUG=memprofilerate=4096,gctrace=1")
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			_ = cmd.Wait()
			// leave removes what the node made: containers, cgroups, pins,
			// links, the DNS device.
			if out, err := exec.Command("nsenter", "--net=/run/netns/"+netns, "--", bin, "--data-dir", dir, "cluster", "leave", "--force",
				"--containerd", ctd.Socket, "--containerd-namespace", "wbn-"+tag, "--cgroup-parent", cg,
				"--bridge", br, "--wireguard-interface", wg).CombinedOutput(); err != nil {
				b.Logf("cluster leave: %v\n%s", err, out)
			}
			// The userspace WireGuard device ends with its interface; it
			// would keep the namespace (and whatever files it inherited)
			// otherwise.
			ktest.RunQuiet("ip", "-n", netns, "link", "del", wg)
			logf.Close()
			os.RemoveAll(dir)
			if b.Failed() {
				b.Logf("the daemon's log: %s", logf.Name())
			} else {
				os.Remove(logf.Name())
			}
		})
		eventually(b, "the node is ready", 90*time.Second, func() error {
			out, err := cli("node", "ls")
			if err == nil && !strings.Contains(out, "ready") {
				err = fmt.Errorf("not ready:\n%s", out)
			}
			return err
		})
		if _, err := cli("image", "load", "-i", img); err != nil {
			b.Fatal(err)
		}
		time.Sleep(settle)
		profile := func(what string) {
			if pprofDir == "" {
				return
			}
			// The daemon's heap and goroutines at this point, for a look at
			// where its memory goes (go tool pprof).
			for _, p := range []string{"heap", "goroutine"} {
				out, err := exec.Command("nsenter", "--net=/run/netns/"+netns, "--", "curl", "-sf", "-o",
					filepath.Join(pprofDir, strings.ReplaceAll(what, " ", "-")+"-"+p+".pprof"),
					"http://127.0.0.1:9323/debug/pprof/"+p).CombinedOutput()
				if err != nil {
					b.Logf("profile %s %s: %v: %s", what, p, err, out)
				}
			}
		}
		base, basePSS, _, _ := report(b, "no task", bin, netns)
		profile("no task")
		b.ReportMetric(float64(base)/1024, "0-tasks-MiB")
		b.ReportMetric(float64(basePSS)/1024, "0-tasks-PSS-MiB")
		created := false
		for _, n := range counts {
			verb := []string{"service", "scale", fmt.Sprintf("web=%d", n)}
			if !created {
				verb = []string{"service", "create", "web", "--image", "warren/demo:v1", "--replicas", strconv.Itoa(n)}
				created = true
			}
			if _, err := cli(append(verb, "--timeout", "5m")...); err != nil {
				b.Fatal(err)
			}
			time.Sleep(5 * time.Second) // logs flowing, health settled
			kib, pss, _, ss := report(b, fmt.Sprintf("%d tasks", n), bin, netns)
			ps := peak(ss).ps
			profile(fmt.Sprintf("%d tasks", n))
			b.ReportMetric(float64(kib)/1024, fmt.Sprintf("%d-tasks-MiB", n))
			b.ReportMetric(float64(pss)/1024, fmt.Sprintf("%d-tasks-PSS-MiB", n))
			b.ReportMetric(float64(kib)/float64(base), fmt.Sprintf("%d-tasks/0-tasks", n))
			b.ReportMetric(float64(len(ps)), fmt.Sprintf("%d-tasks-procs", n))
		}
	}
}

func eventually(b *testing.B, what string, within time.Duration, f func() error) {
	b.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: not within %s: %v", what, within, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
