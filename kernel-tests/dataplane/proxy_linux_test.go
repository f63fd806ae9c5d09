package dataplanetest

import (
	"fmt"
	"net/netip"
	"os"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/warrenhq/warren/dataplane"
	"github.com/warrenhq/warren/dataplane/conformance"
	"github.com/warrenhq/warren/dataplane/proxy"
	"github.com/warrenhq/warren/kernel-tests/ktest"
)

// TestProxyConformanceDummyInterface runs the table against the proxy with
// real VIPs, which the proxy puts on a dummy interface it creates.
func TestProxyConformanceDummyInterface(t *testing.T) {
	ktest.Root(t)
	iface := fmt.Sprintf("wdp%d", os.Getpid()%1000000)
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(iface); err == nil {
			netlink.LinkDel(l)
		}
	})
	conformance.Run(t, conformance.Harness{
		New: func(t *testing.T) dataplane.Dataplane {
			d := proxy.NewDataplane(iface)
			t.Cleanup(func() { d.Close() })
			return d
		},
		Backend: conformance.ListenBackend,
		Probe: func(t *testing.T, proto dataplane.Protocol, addr netip.AddrPort, n int) []conformance.Reply {
			return conformance.Dial(proto, addr, n)
		},
		VIP:         func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 43, 210, byte(10 + i)}) },
		BackendAddr: func(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 210, byte(10 + i)}) },
		Port:        conformance.FreePort,
	})
	if _, err := netlink.LinkByName(iface); err != nil {
		t.Fatalf("proxy did not create %s: %v", iface, err)
	}
}
