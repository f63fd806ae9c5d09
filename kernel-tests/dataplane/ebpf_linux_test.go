package dataplanetest

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/warrenhq/warren/dataplane"
	"github.com/warrenhq/warren/dataplane/conformance"
	bpf "github.com/warrenhq/warren/dataplane/ebpf"
	"github.com/warrenhq/warren/kernel-tests/ktest"
)

func newEBPF(t *testing.T, cg, pins string) dataplane.Dataplane {
	t.Helper()
	d, err := bpf.New(bpf.Options{CgroupPath: cg, PinDir: pins})
	if err != nil {
		t.Fatalf("New ebpf: %v", err)
	}
	return d
}

// cleanupPins detaches and removes pins at the end of t; registered before
// the cgroup's own clean-up runs, so links are gone when it is removed.
func cleanupPins(t *testing.T, pins string) {
	t.Cleanup(func() {
		if err := bpf.Unpin(pins); err != nil {
			t.Errorf("unpin: %v", err)
		}
		os.Remove(filepath.Dir(pins)) // the run's parent dir, once empty
	})
}

func TestEBPFConformance(t *testing.T) {
	ktest.Root(t)
	cg := newCgroup(t, "conf")
	enterCgroup(t, cg)
	var mu sync.Mutex
	live := map[string]dataplane.Dataplane{}
	conformance.Run(t, conformance.Harness{
		New: func(t *testing.T) dataplane.Dataplane {
			mu.Lock()
			defer mu.Unlock()
			pins := pinDir(t, t.Name())
			if _, seen := live[t.Name()]; !seen {
				cleanupPins(t, pins)
				t.Cleanup(func() {
					mu.Lock()
					defer mu.Unlock()
					if d := live[t.Name()]; d != nil {
						d.Close()
					}
				})
			}
			d := newEBPF(t, cg, pins)
			live[t.Name()] = d
			return d
		},
		Backend: conformance.ListenBackend,
		Probe: func(t *testing.T, proto dataplane.Protocol, addr netip.AddrPort, n int) []conformance.Reply {
			return conformance.Dial(proto, addr, n)
		},
		VIP:         func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 43, 200, byte(10 + i)}) },
		BackendAddr: func(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 200, byte(10 + i)}) },
		Port:        conformance.FreePort,
		Persistent:  true,
	})
}

func webService(vip netip.Addr, port uint16, groups ...dataplane.Group) dataplane.Service {
	return dataplane.Service{ID: "svc-web", Name: "web", VIP: vip,
		Ports: []dataplane.Port{{Proto: dataplane.TCP, Port: 80, TargetPort: port}}, Groups: groups}
}

// TestEBPFTwoNodesOneMachine runs two node dataplanes with the same VIP on
// sibling cgroups: each cgroup reaches its own node's backend only.
func TestEBPFTwoNodesOneMachine(t *testing.T) {
	ktest.Root(t)
	vip := netip.MustParseAddr("10.43.201.1")
	port := conformance.FreePort(t)
	var cgs []string
	for i, tag := range []string{"nodeA", "nodeB"} {
		cg := newCgroup(t, tag)
		pins := pinDir(t, t.Name()+"-"+tag)
		cleanupPins(t, pins)
		d := newEBPF(t, cg, pins)
		t.Cleanup(func() { d.Close() })
		addr := netip.AddrFrom4([4]byte{127, 0, 201, byte(1 + i)})
		conformance.ListenBackend(t, dataplane.TCP, netip.AddrPortFrom(addr, port), tag)
		err := d.Set(&dataplane.Config{Services: []dataplane.Service{webService(vip, port,
			dataplane.Group{Version: "v1", Weight: 1, Backends: []dataplane.Backend{{ID: tag, Addr: addr}}})}})
		if err != nil {
			t.Fatal(err)
		}
		cgs = append(cgs, cg)
	}
	for i, tag := range []string{"nodeA", "nodeB", "nodeA"} {
		enterCgroup(t, cgs[i%2])
		for _, r := range conformance.Dial(dataplane.TCP, netip.AddrPortFrom(vip, 80), 20) {
			if r.Err != nil || r.Backend != tag {
				t.Fatalf("from %s's cgroup reached %q (err %v)", tag, r.Backend, r.Err)
			}
		}
	}
	leaveCgroup(t)
	// Outside both cgroups the VIP is not balanced at all.
	if r := conformance.Dial(dataplane.TCP, netip.AddrPortFrom(netip.MustParseAddr("127.0.201.9"), 80), 1)[0]; r.Err == nil {
		t.Fatalf("unexpected answer %q", r.Backend)
	}
}

// TestEBPFServesWithoutAgent closes the dataplane (an agent exiting) and
// checks that pinned links and maps keep balancing, then that a new agent
// re-syncs idempotently.
func TestEBPFServesWithoutAgent(t *testing.T) {
	ktest.Root(t)
	cg := newCgroup(t, "noagent")
	pins := pinDir(t, t.Name())
	cleanupPins(t, pins)
	enterCgroup(t, cg)
	vip := netip.MustParseAddr("10.43.202.1")
	port := conformance.FreePort(t)
	addr := netip.MustParseAddr("127.0.202.1")
	conformance.ListenBackend(t, dataplane.TCP, netip.AddrPortFrom(addr, port), "b1")
	cfg := &dataplane.Config{Services: []dataplane.Service{webService(vip, port,
		dataplane.Group{Version: "v1", Weight: 1, Backends: []dataplane.Backend{{ID: "b1", Addr: addr}}})}}
	d := newEBPF(t, cg, pins)
	if err := d.Set(cfg); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	for _, r := range conformance.Dial(dataplane.TCP, netip.AddrPortFrom(vip, 80), 20) {
		if r.Err != nil || r.Backend != "b1" {
			t.Fatalf("with no agent: reached %q, err %v", r.Backend, r.Err)
		}
	}
	d = newEBPF(t, cg, pins)
	defer d.Close()
	if err := d.Set(cfg); err != nil {
		t.Fatal(err)
	}
}

// TestEBPFCounters checks the per-CPU counters through the Prometheus
// collector and that the exposition passes promtool.
func TestEBPFCounters(t *testing.T) {
	ktest.Root(t)
	promtool := ktest.Binary(t, "promtool")
	cg := newCgroup(t, "counters")
	pins := pinDir(t, t.Name())
	cleanupPins(t, pins)
	enterCgroup(t, cg)
	d := newEBPF(t, cg, pins)
	t.Cleanup(func() { d.Close() })
	port := conformance.FreePort(t)
	a1, a2 := netip.MustParseAddr("127.0.203.1"), netip.MustParseAddr("127.0.203.2")
	conformance.ListenBackend(t, dataplane.TCP, netip.AddrPortFrom(a1, port), "t1")
	conformance.ListenBackend(t, dataplane.TCP, netip.AddrPortFrom(a2, port), "t2")
	web := webService(netip.MustParseAddr("10.43.203.1"), port,
		dataplane.Group{Version: "v1", Weight: 1, Backends: []dataplane.Backend{{ID: "t1", Addr: a1}, {ID: "t2", Addr: a2}}})
	down := dataplane.Service{ID: "svc-down", Name: "down", VIP: netip.MustParseAddr("10.43.203.2"),
		Ports: []dataplane.Port{{Proto: dataplane.TCP, Port: 80, TargetPort: port}}}
	if err := d.Set(&dataplane.Config{Services: []dataplane.Service{web, down}}); err != nil {
		t.Fatal(err)
	}
	const n = 300
	got := map[string]int{}
	for _, r := range conformance.Dial(dataplane.TCP, netip.AddrPortFrom(web.VIP, 80), n) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		got[r.Backend]++
	}
	conformance.Dial(dataplane.TCP, netip.AddrPortFrom(down.VIP, 80), 7)

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(dataplane.NewCollector(d))
	if v := testutil.ToFloat64(metric(t, reg, "warren_dataplane_service_connections_total", "web")); v != n {
		t.Errorf("service connections = %v, want %d", v, n)
	}
	if v := testutil.ToFloat64(metric(t, reg, "warren_dataplane_no_backend_drops_total", "down")); v != 7 {
		t.Errorf("drops = %v, want 7", v)
	}
	want := "# HELP warren_dataplane_backend_connections_total New connections balanced to a backend of a service.\n# TYPE warren_dataplane_backend_connections_total counter\n" +
		"warren_dataplane_backend_connections_total{backend=\"t1\",service=\"web\"} " + itoa(got["t1"]) + "\n" +
		"warren_dataplane_backend_connections_total{backend=\"t2\",service=\"web\"} " + itoa(got["t2"]) + "\n"
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "warren_dataplane_backend_connections_total"); err != nil {
		t.Error(err)
	}
	// promtool lints the whole exposition.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, mf := range mfs {
		writeText(&text, mf)
	}
	promCheck(t, promtool, text.String())
}

// TestEBPFErrorCounts: connections the socket balancer sent to a backend
// that refuses or resets them are counted against that backend
// (bpf/conn_errors.c on tp_btf/inet_sock_set_state). It fails, not skips,
// on a kernel without BTF: canary analysis would see no errors there.
func TestEBPFErrorCounts(t *testing.T) {
	ktest.Root(t)
	cg := newCgroup(t, "errors")
	pins := pinDir(t, t.Name())
	cleanupPins(t, pins)
	enterCgroup(t, cg)
	promtool := ktest.Binary(t, "promtool")
	var d dataplane.Dataplane
	conformance.ErrorCounts(t, conformance.Harness{
		New: func(t *testing.T) dataplane.Dataplane {
			d = newEBPF(t, cg, pins)
			t.Cleanup(func() { d.Close() })
			return d
		},
		Backend: conformance.ListenBackend,
		Probe: func(t *testing.T, proto dataplane.Protocol, addr netip.AddrPort, n int) []conformance.Reply {
			return conformance.Dial(proto, addr, n)
		},
		VIP:         func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 43, 204, byte(10 + i)}) },
		BackendAddr: func(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 204, byte(10 + i)}) },
		Port:        conformance.FreePort,
	})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(dataplane.NewCollector(d))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, mf := range mfs {
		writeText(&text, mf)
	}
	for _, m := range []string{`warren_dataplane_backend_resets_total{backend="rst",service="errors"}`, `warren_dataplane_backend_connect_failures_total{backend="refused",service="errors"}`} {
		if !strings.Contains(text.String(), m+" ") || strings.Contains(text.String(), m+" 0\n") {
			t.Errorf("no %s > 0 in:\n%s", m, text.String())
		}
	}
	promCheck(t, promtool, text.String())
}

// TestEBPFErrorCountsAcrossRestart: a restarted agent's dataplane keeps the
// pinned error counts and replaces the tracing link: every reset is counted
// once, neither lost to a detached program nor twice by the old one left
// attached beside the new.
func TestEBPFErrorCountsAcrossRestart(t *testing.T) {
	ktest.Root(t)
	cg := newCgroup(t, "errors-restart")
	pins := pinDir(t, t.Name())
	cleanupPins(t, pins)
	enterCgroup(t, cg)
	port := conformance.FreePort(t)
	rst := netip.MustParseAddr("127.0.205.1")
	conformance.ResetBackend(t, netip.AddrPortFrom(rst, port))
	svc := webService(netip.MustParseAddr("10.43.205.1"), port,
		dataplane.Group{Version: "v1", Weight: 1, Backends: []dataplane.Backend{{ID: "rst", Addr: rst}}})
	resets := func(d dataplane.Dataplane) uint64 {
		cs, err := d.(dataplane.CounterSource).Counters()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.Service == "web" {
				return c.Errors["rst"].Resets
			}
		}
		return 0
	}
	const n = 20
	for round := 1; round <= 3; round++ {
		d := newEBPF(t, cg, pins)
		if err := d.Set(&dataplane.Config{Services: []dataplane.Service{svc}}); err != nil {
			t.Fatal(err)
		}
		for _, r := range conformance.Dial(dataplane.TCP, netip.AddrPortFrom(svc.VIP, 80), n) {
			if r.Err == nil {
				t.Fatalf("the reset backend answered %q", r.Backend)
			}
		}
		if got := resets(d); got != uint64(round*n) {
			t.Fatalf("after %d agents: %d resets counted, want %d", round, got, round*n)
		}
		d.Close()
	}
}
