package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// EnsureAddrs makes the dummy interface name exist, be up, and carry exactly
// addrs as /32s, so listeners can bind VIPs. It is created if missing.
func EnsureAddrs(name string, addrs []netip.Addr) error {
	l, err := netlink.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		err = netlink.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: name}})
		if errors.Is(err, unix.EOPNOTSUPP) {
			// Kernels built without the dummy driver: a bridge with no
			// ports holds local addresses just as well.
			err = netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}})
		}
		if err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		l, err = netlink.LinkByName(name)
	}
	if err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("up %s: %w", name, err)
	}
	have, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("addrs of %s: %w", name, err)
	}
	want := map[netip.Addr]bool{}
	for _, a := range addrs {
		want[a] = true
	}
	for _, a := range have {
		ip, _ := netip.AddrFromSlice(a.IP.To4())
		if want[ip] {
			delete(want, ip)
			continue
		}
		if err := netlink.AddrDel(l, &a); err != nil {
			return fmt.Errorf("remove %v from %s: %w", ip, name, err)
		}
	}
	for a := range want {
		ipn := &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(32, 32)}
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: ipn}); err != nil {
			return fmt.Errorf("add %v to %s: %w", a, name, err)
		}
	}
	return nil
}
