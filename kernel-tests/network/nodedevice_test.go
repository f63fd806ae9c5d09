//go:build linux

package networktest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/warrenhq/warren/dataplane/dns"
	"github.com/warrenhq/warren/dataplane/mesh"
	"github.com/warrenhq/warren/dataplane/nodedevice"
	"github.com/warrenhq/warren/kernel-tests/ktest"
)

// nodeDeviceInner marks the run of TestNodeDeviceParts inside its
// namespace, so that every device process it starts lives there.
const nodeDeviceInner = "WARREN_NETTEST_NODEDEVICE_IF"

// TestNodeDeviceParts: one device process serves a node's DNS and its
// userspace WireGuard device, and each part ends apart. A DNS device takes
// the WireGuard device on; deleting the interface ends only that part;
// a successor of another binary (an upgrade) takes DNS over without a
// failed lookup while the WireGuard device stays where it is; the process
// exits when neither part remains, and SIGTERM ends both.
func TestNodeDeviceParts(t *testing.T) {
	if ifname := os.Getenv(nodeDeviceInner); ifname != "" {
		nodeDeviceParts(t, ifname)
		return
	}
	ktest.Root(t)
	ktest.Binary(t, "ip")
	ktest.Binary(t, "nsenter")
	ktest.File(t, "/dev/net/tun", "TUN for wireguard-go")
	netns := newNetns(t, "nd")
	ifname := shortTag("wnd")
	t.Cleanup(func() {
		// A device process left by a failure would keep the namespace.
		out, _ := ktestOutput("ip", "netns", "pids", netns)
		for _, f := range strings.Fields(out) {
			var pid int
			if _, err := fmt.Sscan(f, &pid); err == nil && pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		_ = os.Remove("/var/run/wireguard/" + ifname + ".sock")
	})
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nsenter", "--net="+nsPath(netns), "--", exe, "-test.run", "^TestNodeDeviceParts$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), nodeDeviceInner+"="+ifname)
	out, err := cmd.CombinedOutput()
	t.Logf("in %s:\n%s", netns, out)
	if err != nil {
		t.Fatalf("in %s: %v", netns, err)
	}
}

func nodeDeviceParts(t *testing.T, ifname string) {
	dir := filepath.Join(t.TempDir(), "dns")
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := pc.LocalAddr().String()
	pc.Close()
	dnsOpts := dns.DeviceOptions{Dir: dir, ListenAddr: listen, Domain: dns.DefaultDomain}
	n := nodedevice.New(nil)
	d, err := n.OpenDNS(dnsOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = dns.StopDevice(dir) })
	if err := d.Set(&dns.Config{Services: map[string]netip.Addr{"web": netip.MustParseAddr("10.99.0.1")}}); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	status := func() dns.DeviceStatus {
		t.Helper()
		s, ok := d.Status()
		if !ok {
			t.Fatal("the dns device does not answer")
		}
		return s
	}
	first := status()
	if first.WireGuard != "" {
		t.Fatalf("a device started for DNS serves wireguard %s", first.WireGuard)
	}
	lookupOK := func() error {
		c := &mdns.Client{Timeout: 500 * time.Millisecond}
		m := new(mdns.Msg)
		m.SetQuestion("web.warren.local.", mdns.TypeA)
		r, _, err := c.Exchange(m, listen)
		if err != nil {
			return err
		}
		if len(r.Answer) != 1 {
			return fmt.Errorf("web.warren.local: %d answers, rcode %s", len(r.Answer), mdns.RcodeToString[r.Rcode])
		}
		return nil
	}
	if err := lookupOK(); err != nil {
		t.Fatal(err)
	}

	// The running DNS device takes the WireGuard device on: one process.
	if err := n.StartWireGuard(ifname, 1420); err != nil {
		t.Fatal(err)
	}
	if s := status(); s.Pid != first.Pid || s.WireGuard != ifname {
		t.Fatalf("after StartWireGuard the dns device is %d serving wireguard %q; want %d serving %s", s.Pid, s.WireGuard, first.Pid, ifname)
	}
	if !mesh.DeviceAlive(ifname) {
		t.Fatalf("%s: no UAPI socket answers", ifname)
	}

	// Deleting the interface ends the WireGuard part only.
	ktest.Run(t, "ip", "link", "del", ifname)
	waitFor(t, "the wireguard part ends", func() error {
		if s := status(); s.WireGuard != "" {
			return fmt.Errorf("still serves %s", s.WireGuard)
		}
		return nil
	})
	if !alive(first.Pid) {
		t.Fatalf("device %d exited with its wireguard part, its DNS part still there", first.Pid)
	}
	if err := lookupOK(); err != nil {
		t.Fatalf("after the interface went: %v", err)
	}
	// Asked again, the same process serves it again.
	if err := n.StartWireGuard(ifname, 1420); err != nil {
		t.Fatal(err)
	}
	if s := status(); s.Pid != first.Pid || s.WireGuard != ifname {
		t.Fatalf("the dns device is %d serving wireguard %q; want %d serving %s", s.Pid, s.WireGuard, first.Pid, ifname)
	}

	// An upgrade: a device of another binary succeeds the DNS part, under
	// lookups; the WireGuard device stays in its process.
	other := filepath.Join(t.TempDir(), "other-binary")
	copyFile(t, mustExecutable(t), other)
	var total, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			total.Add(1)
			if err := lookupOK(); err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	succ := exec.Command(other, nodedevice.Args{DNS: &nodedevice.DNSArgs{Dir: dir, Listen: listen, Domain: dns.DefaultDomain}}.Argv()...)
	succ.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	succ.Stdout, succ.Stderr = io.Discard, io.Discard
	if err := succ.Start(); err != nil {
		t.Fatal(err)
	}
	succExited := make(chan struct{})
	go func() { _ = succ.Wait(); close(succExited) }()
	waitFor(t, "the successor serves DNS", func() error {
		if s := status(); s.Pid != succ.Process.Pid {
			return fmt.Errorf("device %d answers", s.Pid)
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("measured: %d lookups through the hand-over, %d failed", total.Load(), failed.Load())
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d lookups failed; first: %v", n, total.Load(), firstErr.Load())
	}
	if total.Load() < 10 {
		t.Errorf("only %d lookups made", total.Load())
	}
	if s := status(); s.ThisBinary || s.WireGuard != "" {
		t.Errorf("the successor says this binary %v, serving wireguard %q; want another binary serving none", s.ThisBinary, s.WireGuard)
	}
	if !alive(first.Pid) || !mesh.DeviceAlive(ifname) {
		t.Fatalf("the predecessor %d (alive %v) no longer serves %s (UAPI %v) after handing DNS over", first.Pid, alive(first.Pid), ifname, mesh.DeviceAlive(ifname))
	}
	// Without a part, the predecessor exits.
	ktest.Run(t, "ip", "link", "del", ifname)
	waitFor(t, "the predecessor exits with no part left", func() error {
		if alive(first.Pid) {
			return errors.New("still running")
		}
		return nil
	})
	if running, err := dns.StopDevice(dir); err != nil || !running {
		t.Fatalf("StopDevice = %v, %v; want the successor stopped", running, err)
	}
	select {
	case <-succExited:
	case <-time.After(5 * time.Second):
		t.Fatal("the successor still runs after StopDevice")
	}

	// A first start serves both in one process, and SIGTERM ends both.
	dir2 := filepath.Join(t.TempDir(), "dns")
	n2 := nodedevice.New(nil)
	d2, err := n2.OpenDNS(dns.DeviceOptions{Dir: dir2, ListenAddr: listen, Domain: dns.DefaultDomain})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = dns.StopDevice(dir2) })
	if err := n2.StartWireGuard(ifname, 1420); err != nil {
		t.Fatal(err)
	}
	s, ok := d2.Status()
	if !ok || s.WireGuard != ifname || !s.ThisBinary {
		t.Fatalf("after a first StartWireGuard the dns device says %+v (answering %v); want this binary serving %s", s, ok, ifname)
	}
	if err := d2.Start(); err != nil {
		t.Fatal(err)
	}
	if s2, _ := d2.Status(); s2.Pid != s.Pid {
		t.Fatalf("Start replaced the device %d by %d", s.Pid, s2.Pid)
	}
	if err := syscall.Kill(s.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "SIGTERM ends the device", func() error {
		if alive(s.Pid) {
			return errors.New("still running")
		}
		return nil
	})
	if _, err := net.InterfaceByName(ifname); err == nil {
		t.Errorf("%s still there after its device exited", ifname)
	}
}

func waitFor(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive reports whether pid runs (a zombie of this process counts as
// gone: every device process here is another's child or reaped).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command's closing parenthesis.
	for i := len(b) - 1; i > 0; i-- {
		if b[i] == ')' && i+2 < len(b) {
			return b[i+2] != 'Z'
		}
	}
	return true
}

func mustExecutable(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
