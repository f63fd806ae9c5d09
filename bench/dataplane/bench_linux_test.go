package dataplanebench

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/warrenhq/warren/dataplane"
	"github.com/warrenhq/warren/dataplane/conformance"
	"github.com/warrenhq/warren/dataplane/ebpf"
	"github.com/warrenhq/warren/dataplane/proxy"
	"github.com/warrenhq/warren/kernel-tests/ktest"
)

func smoke() bool { return os.Getenv("WARREN_BENCH_SMOKE") == "1" || testing.Short() }

// rate makes n sequential connections with a one-line request/response and
// returns connections per second. Every reply must come from want.
func rate(b *testing.B, addr netip.AddrPort, n int, want string) float64 {
	b.Helper()
	start := time.Now()
	for i := range n {
		c, err := net.Dial("tcp4", addr.String())
		if err != nil {
			b.Fatalf("connect %d to %v: %v", i, addr, err)
		}
		c.Write([]byte("?\n"))
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil || strings.TrimSpace(line) != want {
			b.Fatalf("connect %d to %v: reply %q, %v", i, addr, line, err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// inNetns runs f on a thread inside the named netns.
func inNetns(b *testing.B, ns netns.NsHandle, f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		// The thread is left locked: it exits with the goroutine rather than
		// returning to the pool in the wrong namespace.
		if err := netns.Set(ns); err != nil {
			b.Errorf("setns: %v", err)
			return
		}
		f()
	}()
	<-done
}

func services(n int, port uint16, backend netip.Addr) []dataplane.Service {
	out := make([]dataplane.Service, n)
	for i := range out {
		out[i] = dataplane.Service{ID: fmt.Sprintf("s%d", i), Name: fmt.Sprintf("s%d", i),
			VIP:    netip.AddrFrom4([4]byte{10, 43, byte(i >> 8), byte(i)}),
			Ports:  []dataplane.Port{{Proto: dataplane.TCP, Port: 80, TargetPort: port}},
			Groups: []dataplane.Group{{Version: "v1", Weight: 1, Backends: []dataplane.Backend{{ID: "b", Addr: backend}}}}}
	}
	return out
}

func BenchmarkServiceConnect(b *testing.B) {
	ktest.Root(b)
	ktest.Binary(b, "iptables-restore")
	ktest.Binary(b, "ip")
	n := 12000
	sizes := []int{10, 10000}
	if smoke() {
		n = 500
	}
	tag := fmt.Sprintf("wbench%d", os.Getpid())

	// eBPF scope: a fresh cgroup holding the benchmark process; pins on a
	// private bpffs.
	cg := filepath.Join(ktest.Cgroup2(b), tag)
	if err := os.Mkdir(cg, 0o755); err != nil {
		b.Fatal(err)
	}
	home := homeCgroup(b)
	b.Cleanup(func() {
		os.WriteFile(filepath.Join(home, "cgroup.procs"), []byte(fmt.Sprint(os.Getpid())), 0)
		os.Remove(cg)
	})
	bpffs, err := os.MkdirTemp("", tag)
	if err != nil {
		b.Fatal(err)
	}
	if err := unix.Mount("bpf", bpffs, "bpf", 0, "mode=0700"); err != nil {
		b.Fatalf("mount bpffs: %v", err)
	}
	b.Cleanup(func() { unix.Unmount(bpffs, 0); os.Remove(bpffs) })

	// iptables baseline lives in a netns of its own.
	ktest.Run(b, "ip", "netns", "add", tag)
	b.Cleanup(func() { ktest.RunQuiet("ip", "netns", "del", tag) })
	nsx := func(args ...string) { ktest.Run(b, "ip", append([]string{"netns", "exec", tag}, args...)...) }
	nsx("ip", "link", "set", "lo", "up")
	nsx("ip", "addr", "add", "10.44.0.1/32", "dev", "lo")
	nsx("ip", "route", "add", "10.43.0.0/16", "dev", "lo")
	ns, err := netns.GetFromName(tag)
	if err != nil {
		b.Fatal(err)
	}
	defer ns.Close()

	port := conformance.FreePortTB(b)
	backend := netip.MustParseAddr("127.0.99.1")
	conformance.ListenBackendTB(b, dataplane.TCP, netip.AddrPortFrom(backend, port), "b")
	conformance.ListenBackendTB(b, dataplane.TCP, netip.AddrPortFrom(netip.MustParseAddr("127.0.99.2"), port), "b2")
	nsBackend := netip.MustParseAddr("10.44.0.1")
	inNetns(b, ns, func() { conformance.ListenBackendTB(b, dataplane.TCP, netip.AddrPortFrom(nsBackend, port), "b") })

	fmt.Printf("\n%-9s %12s %12s %12s %12s %10s %10s %10s %12s\n", "services", "direct/s", "ebpf/s", "proxy/s", "iptables/s", "ebpf÷dir", "ebpf÷prx", "ebpf÷ipt", "set→effect")
	for _, size := range sizes {
		svcs := services(size, port, backend)
		target := svcs[size-1] // the last rule is the worst case for iptables
		vip := netip.AddrPortFrom(target.VIP, 80)

		pins := filepath.Join(bpffs, fmt.Sprint(size))
		d, err := ebpf.New(ebpf.Options{CgroupPath: cg, PinDir: pins})
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Set(&dataplane.Config{Services: svcs}); err != nil {
			b.Fatal(err)
		}
		// Direct and eBPF alternate in rounds, moving this process in and
		// out of the attached cgroup, so drift on a noisy machine (other
		// load, CPU frequency) weighs on both alike.
		moveTo := func(dir string) {
			if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(fmt.Sprint(os.Getpid())), 0); err != nil {
				b.Fatal(err)
			}
		}
		// The proxy runs beside it, on VIPs 127.1.x.y (no interface needed,
		// and outside the eBPF service range), for the same rounds.
		proxySvcs := services(size, port, backend)
		for i := range proxySvcs {
			proxySvcs[i].VIP = netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)})
		}
		p := proxy.NewDataplane("")
		if err := p.Set(&dataplane.Config{Services: proxySvcs}); err != nil {
			b.Fatal(err)
		}
		const rounds = 6
		per := n / rounds
		var directDur, ebpfDur, proxyDur time.Duration
		timed := func(addr netip.AddrPort, want string) time.Duration {
			t0 := time.Now()
			rate(b, addr, per, want)
			return time.Since(t0)
		}
		for r := 0; r < rounds; r++ {
			moveTo(home)
			directDur += timed(netip.AddrPortFrom(backend, port), "b")
			proxyDur += timed(netip.AddrPortFrom(proxySvcs[size-1].VIP, 80), "b")
			moveTo(cg)
			ebpfDur += timed(vip, "b")
		}
		p.Close()
		direct := float64(per*rounds) / directDur.Seconds()
		ebpfRate := float64(per*rounds) / ebpfDur.Seconds()
		proxyRate := float64(per*rounds) / proxyDur.Seconds()

		// Set → effect: move the target service to a second backend and
		// time until the first new connection lands there.
		moved := services(size, port, backend)
		moved[size-1].Groups[0].Backends[0] = dataplane.Backend{ID: "b2", Addr: netip.MustParseAddr("127.0.99.2")}
		t0 := time.Now()
		if err := d.Set(&dataplane.Config{Services: moved}); err != nil {
			b.Fatal(err)
		}
		rate(b, vip, 1, "b2")
		effect := time.Since(t0)
		os.WriteFile(filepath.Join(home, "cgroup.procs"), []byte(fmt.Sprint(os.Getpid())), 0)
		d.Close()
		ebpf.Unpin(pins)

		// iptables: nat OUTPUT → services chain → per-service chain → DNAT.
		var rules strings.Builder
		rules.WriteString("*nat\n:OUTPUT ACCEPT [0:0]\n:WSVC - [0:0]\n")
		for i := range size {
			fmt.Fprintf(&rules, ":WS-%d - [0:0]\n", i)
		}
		rules.WriteString("-A OUTPUT -j WSVC\n")
		for i, s := range svcs {
			fmt.Fprintf(&rules, "-A WSVC -d %v/32 -p tcp --dport 80 -j WS-%d\n", s.VIP, i)
			fmt.Fprintf(&rules, "-A WS-%d -p tcp -m statistic --mode random --probability 1.0 -j DNAT --to-destination %v:%d\n", i, nsBackend, port)
		}
		rules.WriteString("COMMIT\n")
		cmd := exec.Command("ip", "netns", "exec", tag, "iptables-restore")
		cmd.Stdin = strings.NewReader(rules.String())
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("iptables-restore: %v\n%s", err, out)
		}
		var iptRate float64
		inNetns(b, ns, func() { iptRate = rate(b, vip, n, "b") })

		fmt.Printf("%-9d %12.0f %12.0f %12.0f %12.0f %10.2f %10.2f %10.2f %12v\n", size, direct, ebpfRate, proxyRate, iptRate,
			ebpfRate/direct, ebpfRate/proxyRate, ebpfRate/iptRate, effect.Round(time.Microsecond))
		b.ReportMetric(ebpfRate/direct, fmt.Sprintf("ebpf/direct@%d", size))
		b.ReportMetric(ebpfRate/proxyRate, fmt.Sprintf("ebpf/proxy@%d", size))
		b.ReportMetric(ebpfRate/iptRate, fmt.Sprintf("ebpf/iptables@%d", size))
		b.ReportMetric(float64(effect.Microseconds()), fmt.Sprintf("set-to-effect-µs@%d", size))
	}
}

func homeCgroup(b *testing.B) string {
	p, err := ktest.OwnCgroup2()
	if err != nil {
		b.Fatal(err)
	}
	return p
}
