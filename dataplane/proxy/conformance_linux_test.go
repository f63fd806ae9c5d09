package proxy_test

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/warrenhq/warren/dataplane"
	"github.com/warrenhq/warren/dataplane/conformance"
	"github.com/warrenhq/warren/dataplane/proxy"
)

// TestProxyConformance runs the shared table against the proxy on loopback
// without root: VIPs are 127.0.1.x, which need no interface. The run with
// VIPs on a dummy interface is in kernel-tests/dataplane. Linux only because
// other systems route only 127.0.0.1 to loopback.
func TestProxyConformance(t *testing.T) {
	var mu sync.Mutex
	live := map[string]dataplane.Dataplane{}
	conformance.Run(t, conformance.Harness{
		New: func(t *testing.T) dataplane.Dataplane {
			d := proxy.NewDataplane("")
			mu.Lock()
			defer mu.Unlock()
			live[t.Name()] = d
			t.Cleanup(func() { d.Close() })
			return d
		},
		Backend: conformance.ListenBackend,
		Probe: func(t *testing.T, proto dataplane.Protocol, addr netip.AddrPort, n int) []conformance.Reply {
			return conformance.Dial(proto, addr, n)
		},
		VIP:         func(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 1, byte(10 + i)}) },
		BackendAddr: func(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 2, byte(10 + i)}) },
		Port:        conformance.FreePort,
	})
}

// TestProxyErrorCounts: the proxy counts refused dials and resets per
// backend, as the eBPF dataplane does (kernel-tests/dataplane).
func TestProxyErrorCounts(t *testing.T) {
	conformance.ErrorCounts(t, conformance.Harness{
		New: func(t *testing.T) dataplane.Dataplane {
			d := proxy.NewDataplane("")
			t.Cleanup(func() { d.Close() })
			return d
		},
		Backend: conformance.ListenBackend,
		Probe: func(t *testing.T, proto dataplane.Protocol, addr netip.AddrPort, n int) []conformance.Reply {
			return conformance.Dial(proto, addr, n)
		},
		VIP:         func(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 1, byte(10 + i)}) },
		BackendAddr: func(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 2, byte(10 + i)}) },
		Port:        conformance.FreePort,
	})
}
