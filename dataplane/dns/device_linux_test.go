package dns

import (
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// testDeviceArg makes the test binary a DNS device process of its own
// (the node's device process, dataplane/nodedevice, is tested there): the
// Device starts os.Executable() with the options' Command.
const testDeviceArg = "__dns-test-device"

func TestMain(m *testing.M) {
	if a := os.Args[1:]; len(a) == 4 && a[0] == testDeviceArg {
		l := log.New(os.Stderr, "dns-test-device: ", log.LstdFlags)
		part, err := StartDevice(DeviceOptions{Dir: a[1], ListenAddr: a[2], Domain: a[3]}, nil, l)
		if err != nil {
			l.Fatal(err)
		}
		<-part.Ended()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// deviceOptions are the options of a device serving dir on addr, started
// as this test binary.
func deviceOptions(dir, addr string) DeviceOptions {
	return DeviceOptions{Dir: dir, ListenAddr: addr, Domain: DefaultDomain, Command: []string{testDeviceArg, dir, addr, DefaultDomain}}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().String()
}

func lookup(addr, name string) (string, error) {
	c := &mdns.Client{Timeout: 500 * time.Millisecond}
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), mdns.TypeA)
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		return "", err
	}
	if r.Rcode != mdns.RcodeSuccess {
		return "", fmt.Errorf("%s: %s", name, mdns.RcodeToString[r.Rcode])
	}
	return aRecords(r), nil
}

func devicePid(t *testing.T, dir string) int {
	t.Helper()
	r, err := call(dir, "status", time.Second)
	if err != nil {
		t.Fatalf("device status: %v", err)
	}
	return r.Pid
}

func webTable(vip string) *Config {
	return &Config{Services: map[string]netip.Addr{"web": netip.MustParseAddr(vip)}}
}

// TestDeviceOutlivesDaemon: the device keeps answering when its daemon is
// gone, a new daemon adopts it (same process) and changes its table, a
// daemon of another binary hands it over to a successor without a failed
// lookup, and StopDevice ends it.
func TestDeviceOutlivesDaemon(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dns")
	addr := freeAddr(t)
	opts := deviceOptions(dir, addr)
	t.Cleanup(func() { _, _ = StopDevice(dir) })

	d, err := OpenDevice(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Set(webTable("10.99.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	if got, err := lookup(addr, "web.warren.local"); err != nil || got != "10.99.0.1" {
		t.Fatalf("web = %q, %v; want 10.99.0.1", got, err)
	}
	pid := devicePid(t, dir)

	// Lookups run without pause through everything below.
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
			if _, err := lookup(addr, "web.warren.local"); err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()

	// The daemon is gone (its handle dropped, as by a crash): a new one
	// adopts the same process and its table changes take effect.
	d2, err := OpenDevice(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d2.Start(); err != nil {
		t.Fatal(err)
	}
	if p := devicePid(t, dir); p != pid {
		t.Errorf("restarted daemon runs device %d, want the running %d adopted", p, pid)
	}
	if err := d2.Set(webTable("10.99.0.2")); err != nil {
		t.Fatal(err)
	}
	if got, err := lookup(addr, "web.warren.local"); err != nil || got != "10.99.0.2" {
		t.Errorf("after Set web = %q, %v; want 10.99.0.2", got, err)
	}

	// An upgraded daemon (another binary) starts a successor, which takes
	// the port over while the predecessor still serves.
	d3, err := OpenDevice(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	d3.exe = "another binary"
	if err := d3.Start(); err != nil {
		t.Fatal(err)
	}
	succ := devicePid(t, dir)
	if succ == pid {
		t.Fatalf("device %d kept after an upgrade, want a successor", pid)
	}
	if !waitExit(pid, 2*time.Second) {
		t.Errorf("predecessor %d still running after the hand-over", pid)
	}
	if got, err := lookup(addr, "web.warren.local"); err != nil || got != "10.99.0.2" {
		t.Errorf("successor answers web = %q, %v; want the table it loaded, 10.99.0.2", got, err)
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("measured: %d lookups through adoption and hand-over, %d failed", total.Load(), failed.Load())
	if total.Load() < 10 {
		t.Errorf("only %d lookups made", total.Load())
	}
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d lookups failed; first: %v", n, total.Load(), firstErr.Load())
	}

	running, err := StopDevice(dir)
	if err != nil || !running {
		t.Fatalf("StopDevice = %v, %v; want a running device stopped", running, err)
	}
	if processAlive(succ) {
		t.Errorf("device %d still running after StopDevice", succ)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still there after StopDevice: %v", dir, err)
	}
}

// TestDeviceExitsWithItsDirectory: removing the directory (a node's data
// dir deleted) ends the device, so nothing is left serving a dead node.
func TestDeviceExitsWithItsDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dns")
	d, err := OpenDevice(deviceOptions(dir, freeAddr(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	pid := devicePid(t, dir)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if !waitExit(pid, 5*time.Second) {
		t.Fatalf("device %d still running after its directory was removed", pid)
	}
}

// TestDeviceWaitsForItsAddress: a device started before its listen
// address exists (no bridge yet) reports it, and Set still succeeds.
func TestDeviceWaitsForItsAddress(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dns")
	// 192.0.2.0/24 (TEST-NET-1) is on no interface here.
	d, err := OpenDevice(deviceOptions(dir, "192.0.2.53:53"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = StopDevice(dir) })
	if err := d.Start(); err == nil {
		t.Fatal("Start succeeded on an address no interface has")
	}
	if err := d.Set(webTable("10.99.0.3")); err != nil {
		t.Fatalf("Set while waiting: %v", err)
	}
	if err := d.Set(&Config{Services: map[string]netip.Addr{"bad name!": netip.MustParseAddr("10.0.0.1")}}); err == nil {
		t.Error("Set accepted an invalid name")
	}
}
