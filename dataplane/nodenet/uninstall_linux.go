package nodenet

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"github.com/vishvananda/netlink"

	"github.com/warrenhq/warren/dataplane/dns"
	"github.com/warrenhq/warren/dataplane/ebpf"
)

// Uninstall removes the node's network from this machine: its pinned BPF
// programs and maps (which detaches them), the bridge and every port still
// on it, the WireGuard and proxy interfaces (which removes the routes
// through them), the unreachable route of the service range, and the
// userspace WireGuard socket. What is already gone is skipped, so it may be
// run again. It returns what it removed.
func Uninstall(in Installed) ([]string, error) {
	var removed []string
	var errs []error
	if in.DataDir != "" {
		switch running, err := dns.StopDevice(DNSDir(in.DataDir)); {
		case err != nil:
			errs = append(errs, err)
		case running:
			removed = append(removed, "dns device "+DNSDir(in.DataDir))
		}
	}
	pins := PinDir(in.NodeID)
	if _, err := os.Stat(pins); err == nil {
		if err := ebpf.Unpin(pins); err != nil {
			errs = append(errs, fmt.Errorf("unpin %s: %w", pins, err))
		} else {
			removed = append(removed, "bpf pins "+pins)
		}
	}
	// The parent is shared by the nodes of this machine: only an empty one
	// goes.
	if err := os.Remove(filepath.Dir(pins)); err == nil {
		removed = append(removed, "bpffs dir "+filepath.Dir(pins))
	}
	if br, err := netlink.LinkByName(in.Bridge); err == nil {
		links, err := netlink.LinkList()
		if err != nil {
			errs = append(errs, fmt.Errorf("list links: %w", err))
		}
		for _, l := range links {
			if l.Attrs().MasterIndex == br.Attrs().Index {
				if err := netlink.LinkDel(l); err != nil {
					errs = append(errs, fmt.Errorf("delete %s: %w", l.Attrs().Name, err))
				} else {
					removed = append(removed, "link "+l.Attrs().Name)
				}
			}
		}
	}
	for _, name := range []string{in.Bridge, in.WGIface, ProxyInterface} {
		if name == "" {
			continue
		}
		l, err := netlink.LinkByName(name)
		if err != nil {
			continue
		}
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", name, err))
			continue
		}
		removed = append(removed, "link "+name)
	}
	if in.WGIface != "" {
		sock := filepath.Join("/var/run/wireguard", in.WGIface+".sock")
		if err := os.Remove(sock); err == nil {
			removed = append(removed, "socket "+sock)
		}
	}
	if in.Network.ServiceCIDR != "" {
		_, dst, err := net.ParseCIDR(in.Network.ServiceCIDR)
		if err != nil {
			errs = append(errs, fmt.Errorf("service range %q: %w", in.Network.ServiceCIDR, err))
		} else {
			r := &netlink.Route{Dst: dst, Type: syscall.RTN_UNREACHABLE}
			switch err := netlink.RouteDel(r); {
			case err == nil:
				removed = append(removed, "route unreachable "+dst.String())
			case errors.Is(err, syscall.ESRCH):
			default:
				errs = append(errs, fmt.Errorf("delete route unreachable %s: %w", dst, err))
			}
		}
	}
	return removed, errors.Join(errs...)
}
