package dataplanetest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"

	bpf "github.com/warrenhq/warren/dataplane/ebpf"
	"github.com/warrenhq/warren/kernel-tests/ktest"
)

// skbCtx returns a zeroed struct __sk_buff for BPF_PROG_TEST_RUN with
// gso_segs set; its layout comes from the kernel's BTF.
func skbCtx(t *testing.T, gsoSegs uint32) []byte {
	t.Helper()
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatalf("kernel test requirement missing: kernel BTF: %v", err)
	}
	var s *btf.Struct
	if err := spec.TypeByName("__sk_buff", &s); err != nil {
		t.Fatalf("kernel BTF: __sk_buff: %v", err)
	}
	ctx := make([]byte, s.Size)
	for _, m := range s.Members {
		if m.Name == "gso_segs" {
			binary.NativeEndian.PutUint32(ctx[m.Offset.Bytes():], gsoSegs)
			return ctx
		}
	}
	t.Fatal("kernel BTF: __sk_buff has no gso_segs")
	return nil
}

func taskCounts(t *testing.T, m *ebpf.Map, slot uint32) (sum bpf.TaskCountersTaskCount) {
	t.Helper()
	var vals []bpf.TaskCountersTaskCount
	if err := m.Lookup(slot, &vals); err != nil {
		t.Fatalf("task_counts[%d]: %v", slot, err)
	}
	for _, v := range vals {
		sum.RxPackets += v.RxPackets
		sum.RxBytes += v.RxBytes
		sum.TxPackets += v.TxPackets
		sum.TxBytes += v.TxBytes
	}
	return sum
}

// TestTaskCountersProg: each program counts a packet on a mapped interface
// in its own direction (GSO packets as their segments), counts nothing
// elsewhere, creates no counters, and never touches or stops a packet.
func TestTaskCountersProg(t *testing.T) {
	ktest.Root(t)
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	pins := pinDir(t, t.Name())
	if err := os.MkdirAll(pins, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pins) })
	var objs bpf.TaskCountersObjects
	if err := bpf.LoadTaskCountersObjects(&objs, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: pins}}); err != nil {
		t.Fatalf("load task counters: %v", err)
	}
	t.Cleanup(func() { objs.Close() })
	f := npFixture{t: t}

	// Test runs put the packet on loopback (ifindex 1).
	const lo, slot = uint32(1), uint32(5)
	f.put(objs.TaskIfaces, lo, slot)
	f.put(objs.TaskCounts, slot, make([]bpf.TaskCountersTaskCount, mustCPUs(t)))
	in := packet{proto: ipUDP, src: netip.MustParseAddrPort("10.98.0.11:5000"), dst: netip.MustParseAddrPort("10.98.0.1:53"),
		payload: []byte("seven!!")}.bytes()
	n := uint64(len(in))
	run := func(p *ebpf.Program, ctx any) {
		t.Helper()
		ret, out := f.run(p, in, ctx)
		if ret != tcxNext {
			t.Fatalf("verdict %d, want TCX_NEXT", int32(ret))
		}
		if string(out) != string(in) {
			t.Fatal("packet changed")
		}
	}
	check := func(want bpf.TaskCountersTaskCount) {
		t.Helper()
		if got := taskCounts(t, objs.TaskCounts, slot); got != want {
			t.Fatalf("counts %+v, want %+v", got, want)
		}
	}
	run(objs.WarrenTaskIn, nil)
	check(bpf.TaskCountersTaskCount{TxPackets: 1, TxBytes: n})
	run(objs.WarrenTaskOut, nil)
	run(objs.WarrenTaskOut, nil)
	check(bpf.TaskCountersTaskCount{TxPackets: 1, TxBytes: n, RxPackets: 2, RxBytes: 2 * n})
	run(objs.WarrenTaskIn, skbCtx(t, 4))
	check(bpf.TaskCountersTaskCount{TxPackets: 5, TxBytes: 2 * n, RxPackets: 2, RxBytes: 2 * n})

	// A slot without counters: nothing is created.
	f.put(objs.TaskIfaces, lo, slot+1)
	run(objs.WarrenTaskIn, nil)
	var vals []bpf.TaskCountersTaskCount
	if err := objs.TaskCounts.Lookup(slot+1, &vals); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Fatalf("program created counters for slot %d: %v", slot+1, err)
	}
	// An interface that is not mapped: nothing counted.
	if err := objs.TaskIfaces.Delete(lo); err != nil {
		t.Fatal(err)
	}
	run(objs.WarrenTaskIn, nil)
	run(objs.WarrenTaskOut, nil)
	check(bpf.TaskCountersTaskCount{TxPackets: 5, TxBytes: 2 * n, RxPackets: 2, RxBytes: 2 * n})
}

func mustCPUs(t *testing.T) int {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// taskVeth is a test netns whose eth0 is paired with a host-side veth in
// the test's own netns, as the CNI plugin wires a task.
type taskVeth struct {
	netns, host string
	peerMAC     net.HardwareAddr // a neighbour that does not exist: frames to it go nowhere
}

func newTaskVeth(t *testing.T) *taskVeth {
	t.Helper()
	ktest.Binary(t, "ip")
	pid := os.Getpid()
	v := &taskVeth{netns: fmt.Sprintf("wtc%d", pid), host: fmt.Sprintf("wtc%dh", pid),
		peerMAC: net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}}
	ktest.Run(t, "ip", "netns", "add", v.netns)
	t.Cleanup(func() { ktest.RunQuiet("ip", "netns", "del", v.netns) })
	ktest.Run(t, "ip", "link", "add", v.host, "type", "veth", "peer", "name", "eth0", "netns", v.netns)
	t.Cleanup(func() { ktest.RunQuiet("ip", "link", "del", v.host) })
	// No IPv6 on either end: router solicitations and MLD reports would be
	// counted too, and the test counts exactly.
	noIPv6 := func(ifname string) {
		t.Helper()
		if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+ifname+"/disable_ipv6", []byte("1"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("disable IPv6 on %s: %v", ifname, err)
		}
	}
	noIPv6(v.host)
	err := ns.WithNetNSPath(netnsPath(v.netns), func(ns.NetNS) error {
		noIPv6("eth0")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	in := func(args ...string) { ktest.Run(t, "ip", append([]string{"-n", v.netns}, args...)...) }
	in("addr", "add", "192.0.2.1/24", "dev", "eth0")
	in("neigh", "add", "192.0.2.2", "lladdr", v.peerMAC.String(), "dev", "eth0", "nud", "permanent")
	in("link", "set", "eth0", "up")
	ktest.Run(t, "ip", "link", "set", v.host, "up")
	return v
}

// send sends n UDP datagrams of size bytes from the task to 192.0.2.2 (a
// permanent neighbour that no host answers for): the host end receives them,
// the host drops them (not its MAC).
func (v *taskVeth) send(t *testing.T, n, size int) {
	t.Helper()
	err := ns.WithNetNSPath(netnsPath(v.netns), func(ns.NetNS) error {
		c, err := net.Dial("udp4", "192.0.2.2:9")
		if err != nil {
			return err
		}
		defer c.Close()
		for i := 0; i < n; i++ {
			if _, err := c.Write(make([]byte, size)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send from task: %v", err)
	}
}

// receive transmits n frames of size bytes out of the host end with an
// EtherType no one handles, so the task gets them and answers nothing.
func (v *taskVeth) receive(t *testing.T, n, size int) {
	t.Helper()
	ifc, err := net.InterfaceByName(v.host)
	if err != nil {
		t.Fatal(err)
	}
	const etherType = 0x88b5 // IEEE 802 local experimental
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err != nil {
		t.Fatalf("packet socket: %v", err)
	}
	defer unix.Close(fd)
	frame := make([]byte, size)
	copy(frame[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(frame[6:12], ifc.HardwareAddr)
	binary.BigEndian.PutUint16(frame[12:], etherType)
	to := &unix.SockaddrLinklayer{Ifindex: ifc.Index, Protocol: nport16(etherType), Halen: 6}
	copy(to.Addr[:], frame[0:6])
	for i := 0; i < n; i++ {
		if err := unix.Sendto(fd, frame, 0, to); err != nil {
			t.Fatalf("send to task: %v", err)
		}
	}
}

// tcxAttached counts the programs on the interface's TCX hook.
func tcxAttached(t *testing.T, ifname string, at ebpf.AttachType) int {
	t.Helper()
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	r, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Index, Attach: at})
	if err != nil {
		t.Fatalf("query tcx on %s: %v", ifname, err)
	}
	return len(r.Programs)
}

// waitCounts waits until task's counts reach want (the host end receives
// through the backlog, which may run after send returns) and fails unless
// they are exactly want.
func waitCounts(t *testing.T, c *bpf.TaskCounters, task string, want bpf.TaskTraffic) {
	t.Helper()
	var got bpf.TaskTraffic
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		all, err := c.Counts()
		if err != nil {
			t.Fatal(err)
		}
		got = all[task]
		if got.RxPackets >= want.RxPackets && got.TxPackets >= want.TxPackets || time.Now().After(deadline) {
			break
		}
	}
	if got != want {
		t.Fatalf("%s: counts %+v, want %+v", task, got, want)
	}
}

// TestTaskCountersVeth: Set attaches to a task's host veth and counts both
// directions, reports a missing interface once without failing the other
// task, survives a restart on the same pin dir, and Set(nil) detaches.
func TestTaskCountersVeth(t *testing.T) {
	ktest.Root(t)
	promtool := ktest.Binary(t, "promtool")
	v := newTaskVeth(t)
	pins := pinDir(t, t.Name())
	cleanupPins(t, pins)

	c, err := bpf.NewTaskCounters(pins)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	missing := v.host + "x"
	want := map[string]string{"task-a": v.host, "task-b": missing}
	err = c.Set(want)
	if err == nil || !strings.Contains(err.Error(), "task-b") || strings.Contains(err.Error(), "task-a") {
		t.Fatalf("Set with a missing interface: %v, want an error about task-b only", err)
	}
	if err := c.Set(want); err != nil {
		t.Fatalf("second Set reported the missing interface again: %v", err)
	}
	for _, at := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
		if n := tcxAttached(t, v.host, at); n != 1 {
			t.Fatalf("%v: %d programs attached, want 1", at, n)
		}
	}
	if err := c.Set(map[string]string{"task-a": v.host}); err != nil {
		t.Fatal(err)
	}

	const udp, frame = 100, 64
	wire := uint64(14 + 20 + 8 + udp)
	v.send(t, 3, udp)
	v.receive(t, 5, frame)
	first := bpf.TaskTraffic{TxPackets: 3, TxBytes: 3 * wire, RxPackets: 5, RxBytes: 5 * frame}
	waitCounts(t, c, "task-a", first)

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	exp := fmt.Sprintf(`# HELP warren_task_network_packets_total Packets on a task's network interface; rx: received by the task, tx: sent by it.
# TYPE warren_task_network_packets_total counter
warren_task_network_packets_total{direction="rx",task="task-a"} 5
warren_task_network_packets_total{direction="tx",task="task-a"} 3
# HELP warren_task_network_bytes_total Bytes (Ethernet frames) on a task's network interface; rx: received by the task, tx: sent by it.
# TYPE warren_task_network_bytes_total counter
warren_task_network_bytes_total{direction="rx",task="task-a"} %d
warren_task_network_bytes_total{direction="tx",task="task-a"} %d
`, 5*frame, 3*wire)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(exp),
		"warren_task_network_packets_total", "warren_task_network_bytes_total"); err != nil {
		t.Error(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, mf := range mfs {
		writeText(&text, mf)
	}
	promCheck(t, promtool, text.String())

	// Restart: the next agent sees the counts before its first Set, and
	// that Set swaps programs in the pinned links rather than adding some.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c, err = bpf.NewTaskCounters(pins)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	reg = prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	got, err := c.Counts()
	if err != nil || len(got) != 1 || got["task-a"] != first {
		t.Fatalf("after restart: %+v, %v; want task-a %+v", got, err, first)
	}
	if err := c.Set(map[string]string{"task-a": v.host}); err != nil {
		t.Fatal(err)
	}
	for _, at := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
		if n := tcxAttached(t, v.host, at); n != 1 {
			t.Fatalf("after restart %v: %d programs attached, want 1", at, n)
		}
	}
	v.send(t, 1, udp)
	first.TxPackets, first.TxBytes = 4, 4*wire
	waitCounts(t, c, "task-a", first)

	// Forgotten: detached, pins and series gone.
	if err := c.Set(nil); err != nil {
		t.Fatal(err)
	}
	for _, at := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
		if n := tcxAttached(t, v.host, at); n != 0 {
			t.Fatalf("after Set(nil) %v: %d programs attached", at, n)
		}
	}
	if ls, _ := filepath.Glob(filepath.Join(pins, "task_*_*gress")); len(ls) != 0 {
		t.Fatalf("link pins left: %v", ls)
	}
	if got, err := c.Counts(); err != nil || len(got) != 0 {
		t.Fatalf("after Set(nil): %+v, %v", got, err)
	}
	if n, err := testutil.GatherAndCount(reg, "warren_task_network_packets_total"); err != nil || n != 0 {
		t.Fatalf("series after Set(nil): %d, %v", n, err)
	}
}
