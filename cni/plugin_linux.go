package cni

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ip"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/warrenhq/warren/cni/ipam"
)

// Main runs the plugin: the environment and stdin carry the command as the
// CNI spec defines, the result or error goes to stdout. It exits the process.
func Main() {
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    cmdAdd,
		Del:    cmdDel,
		Check:  cmdCheck,
		GC:     cmdGC,
		Status: cmdStatus,
	}, version.All, "warren-cni: bridge + veth + node-subnet IPAM for Warren")
}

func internal(msg string, err error) error {
	var te *types.Error
	if errors.As(err, &te) {
		return te
	}
	return types.NewError(types.ErrInternal, msg, err.Error())
}

func cmdAdd(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	netns, err := ns.GetNS(args.Netns)
	if err != nil {
		return types.NewError(types.ErrInvalidNetNS, "open netns", err.Error())
	}
	defer netns.Close()

	br, err := ensureBridge(conf)
	if err != nil {
		return internal("set up bridge", err)
	}
	store, err := ipam.Open(conf.DataDir, conf.subnet)
	if err != nil {
		return types.NewError(types.ErrIOFailure, "open ipam store", err.Error())
	}
	addr, err := store.Allocate(args.ContainerID, args.IfName)
	if err != nil {
		return internal("allocate address", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = store.Release(args.ContainerID, args.IfName)
		}
	}()

	hostName := hostVethName(args.ContainerID, args.IfName)
	gw := ipam.Gateway(conf.subnet)
	cidr := &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(conf.subnet.Bits(), 32)}
	hostNS, err := ns.GetCurrentNS()
	if err != nil {
		return internal("open host netns", err)
	}
	defer hostNS.Close()

	var hostIf, contIf net.Interface
	// A repeated ADD for an attachment that is intact keeps it: recreating the
	// veth would change the MAC under live neighbours' ARP caches.
	reused := existingAttachment(netns, hostName, args.IfName, cidr, &hostIf, &contIf)
	if !reused {
		// Deleting the host end of a broken attachment removes both ends.
		_ = ip.DelLinkByName(hostName)
	}
	err = netns.Do(func(ns.NetNS) error {
		if !reused {
			if l, err := netlink.LinkByName(args.IfName); err == nil {
				// Left over from a runtime that lost track of it.
				_ = netlink.LinkDel(l)
			}
			var err error
			hostIf, contIf, err = ip.SetupVethWithName(args.IfName, hostName, conf.MTU, "", hostNS)
			if err != nil {
				return fmt.Errorf("create veth: %w", err)
			}
		}
		link, err := netlink.LinkByName(args.IfName)
		if err != nil {
			return err
		}
		if !reused {
			if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: cidr}); err != nil {
				return fmt.Errorf("add address %s: %w", cidr, err)
			}
		}
		if err := netlink.LinkSetUp(link); err != nil {
			return fmt.Errorf("set %s up: %w", args.IfName, err)
		}
		// The default route also carries service VIPs: connect() must get
		// past routing for the eBPF socket hook to rewrite the destination.
		def := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}, Gw: gw.AsSlice()}
		if err := netlink.RouteReplace(def); err != nil {
			return fmt.Errorf("add default route: %w", err)
		}
		return nil
	})
	if err != nil {
		_ = ip.DelLinkByName(hostName)
		return internal("configure container interface", err)
	}
	hostLink, err := netlink.LinkByName(hostName)
	if err == nil {
		err = netlink.LinkSetMaster(hostLink, br)
	}
	if err == nil {
		err = netlink.LinkSetUp(hostLink)
	}
	if err != nil {
		_ = ip.DelLinkByName(hostName)
		return internal("attach host veth to bridge", err)
	}

	result := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: br.Attrs().Name, Mac: br.Attrs().HardwareAddr.String()},
			{Name: hostIf.Name, Mac: hostIf.HardwareAddr.String()},
			{Name: contIf.Name, Mac: contIf.HardwareAddr.String(), Sandbox: args.Netns},
		},
		IPs: []*current.IPConfig{{
			Interface: current.Int(2),
			Address:   *cidr,
			Gateway:   gw.AsSlice(),
		}},
		Routes: []*types.Route{{Dst: net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}, GW: gw.AsSlice()}},
		DNS:    conf.DNS,
	}
	ok = true
	return types.PrintResult(result, conf.CNIVersion)
}

// existingAttachment reports whether the host veth and the container
// interface of this attachment already exist with the leased address.
func existingAttachment(netns ns.NetNS, hostName, ifName string, cidr *net.IPNet, hostIf, contIf *net.Interface) bool {
	hl, err := netlink.LinkByName(hostName)
	if err != nil {
		return false
	}
	ok := false
	_ = netns.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(ifName)
		if err != nil {
			return nil
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			return nil
		}
		for _, a := range addrs {
			if a.IPNet.String() == cidr.String() {
				ok = true
			}
		}
		*contIf = net.Interface{Name: l.Attrs().Name, HardwareAddr: l.Attrs().HardwareAddr, Index: l.Attrs().Index}
		return nil
	})
	*hostIf = net.Interface{Name: hl.Attrs().Name, HardwareAddr: hl.Attrs().HardwareAddr, Index: hl.Attrs().Index}
	return ok
}

// ensureBridge creates the node bridge with the gateway address if it is
// missing; concurrent ADDs race here, so "exists" is success.
func ensureBridge(conf *netConf) (netlink.Link, error) {
	mac := BridgeMAC(conf.Bridge, conf.subnet)
	br, err := netlink.LinkByName(conf.Bridge)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return nil, fmt.Errorf("look up bridge %s: %w", conf.Bridge, err)
		}
		la := netlink.NewLinkAttrs()
		la.Name = conf.Bridge
		la.MTU = conf.MTU
		// Set at creation, before any port exists, so the bridge never
		// takes (and later loses) a port's MAC.
		la.HardwareAddr = mac
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil && !errors.Is(err, syscall.EEXIST) {
			return nil, fmt.Errorf("create bridge %s: %w", conf.Bridge, err)
		}
		if br, err = netlink.LinkByName(conf.Bridge); err != nil {
			return nil, fmt.Errorf("look up bridge %s: %w", conf.Bridge, err)
		}
	}
	if _, ok := br.(*netlink.Bridge); !ok {
		return nil, fmt.Errorf("%s exists and is a %s, not a bridge", conf.Bridge, br.Type())
	}
	if cur := br.Attrs().HardwareAddr; !bytes.Equal(cur, mac) && !macPinned(conf.Bridge) {
		// A bridge made by an older warren borrows a port's MAC, which its
		// containers have cached as their gateway's. Changing it would
		// strand them; pinning the MAC it has keeps them working and stops
		// it from following its ports from now on.
		if err := netlink.LinkSetHardwareAddr(br, cur); err != nil {
			return nil, fmt.Errorf("pin %s address %s: %w", conf.Bridge, cur, err)
		}
	}
	gw := &net.IPNet{IP: ipam.Gateway(conf.subnet).AsSlice(), Mask: net.CIDRMask(conf.subnet.Bits(), 32)}
	if err := netlink.AddrAdd(br, &netlink.Addr{IPNet: gw}); err != nil && !errors.Is(err, syscall.EEXIST) {
		return nil, fmt.Errorf("add gateway %s to %s: %w", gw, conf.Bridge, err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return nil, fmt.Errorf("set %s up: %w", conf.Bridge, err)
	}
	if err := ip.EnableIP4Forward(); err != nil {
		return nil, fmt.Errorf("enable ip_forward: %w", err)
	}
	if conf.svcCIDR.IsValid() {
		// A VIP packet that escaped the socket load balancer must fail here
		// rather than leave the node by the default route.
		r := &netlink.Route{Dst: prefixNet(conf.svcCIDR), Type: syscall.RTN_UNREACHABLE}
		if err := netlink.RouteReplace(r); err != nil {
			return nil, fmt.Errorf("add unreachable route %s: %w", conf.svcCIDR, err)
		}
	}
	return br, nil
}

// macPinned reports whether the bridge's MAC was set explicitly (the
// kernel's addr_assign_type NET_ADDR_SET, 3), so the kernel keeps it
// whatever ports come and go. Unknown (no sysfs for this namespace) is
// false: pinning again is harmless.
func macPinned(bridge string) bool {
	b, err := os.ReadFile("/sys/class/net/" + bridge + "/addr_assign_type")
	return err == nil && strings.TrimSpace(string(b)) == "3"
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func cmdDel(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	store, err := ipam.Open(conf.DataDir, conf.subnet)
	if err != nil {
		return types.NewError(types.ErrIOFailure, "open ipam store", err.Error())
	}
	if err := store.Release(args.ContainerID, args.IfName); err != nil {
		return internal("release address", err)
	}
	// DEL must succeed when the netns or the links are already gone.
	if args.Netns != "" {
		err := ns.WithNetNSPath(args.Netns, func(ns.NetNS) error {
			if err := ip.DelLinkByName(args.IfName); err != nil && !errors.Is(err, ip.ErrLinkNotFound) {
				return err
			}
			return nil
		})
		var notExist ns.NSPathNotExistErr
		if err != nil && !errors.As(err, &notExist) {
			return internal("delete container interface", err)
		}
	}
	if err := ip.DelLinkByName(hostVethName(args.ContainerID, args.IfName)); err != nil && !errors.Is(err, ip.ErrLinkNotFound) {
		return internal("delete host veth", err)
	}
	return nil
}

func cmdCheck(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	if conf.RawPrevResult == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "check needs prevResult", "")
	}
	pc := types.PluginConf{CNIVersion: conf.CNIVersion, RawPrevResult: conf.RawPrevResult}
	if err := version.ParsePrevResult(&pc); err != nil {
		return types.NewError(types.ErrDecodingFailure, "decode prevResult", err.Error())
	}
	prev, err := current.NewResultFromResult(pc.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "convert prevResult", err.Error())
	}
	var want *current.IPConfig
	for _, c := range prev.IPs {
		if c.Address.IP.To4() != nil {
			want = c
		}
	}
	if want == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "prevResult has no IPv4 address", "")
	}
	wantAddr, _ := netip.AddrFromSlice(want.Address.IP.To4())

	store, err := ipam.Open(conf.DataDir, conf.subnet)
	if err != nil {
		return types.NewError(types.ErrIOFailure, "open ipam store", err.Error())
	}
	leased, ok, err := store.Lookup(args.ContainerID, args.IfName)
	if err != nil {
		return internal("read ipam store", err)
	}
	if !ok || leased != wantAddr {
		return types.NewError(types.ErrUnknownContainer, "no matching address lease", fmt.Sprintf("lease %v (held %v), prevResult %s", leased, ok, wantAddr))
	}
	br, err := netlink.LinkByName(conf.Bridge)
	if err != nil {
		return internal("bridge missing", err)
	}
	host, err := netlink.LinkByName(hostVethName(args.ContainerID, args.IfName))
	if err != nil {
		return internal("host veth missing", err)
	}
	if host.Attrs().MasterIndex != br.Attrs().Index {
		return types.NewError(types.ErrInternal, "host veth not on bridge", host.Attrs().Name)
	}
	gw := ipam.Gateway(conf.subnet)
	err = ns.WithNetNSPath(args.Netns, func(ns.NetNS) error {
		l, err := netlink.LinkByName(args.IfName)
		if err != nil {
			return fmt.Errorf("interface %s: %w", args.IfName, err)
		}
		if l.Attrs().Flags&net.FlagUp == 0 {
			return fmt.Errorf("interface %s is down", args.IfName)
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		found := false
		for _, a := range addrs {
			if a.IP.Equal(want.Address.IP) {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("interface %s lacks %s", args.IfName, want.Address.String())
		}
		routes, err := netlink.RouteList(l, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.Gw.Equal(gw.AsSlice()) {
				return nil
			}
		}
		return fmt.Errorf("no default route via %s", gw)
	})
	if err != nil {
		var notExist ns.NSPathNotExistErr
		if errors.As(err, &notExist) {
			return types.NewError(types.ErrInvalidNetNS, "open netns", err.Error())
		}
		return types.NewError(types.ErrInternal, "container interface does not match prevResult", err.Error())
	}
	return nil
}

// cmdGC frees the leases and host veths of attachments the runtime no
// longer knows (CNI 1.1 GC), e.g. after a crash between ADD and DEL.
func cmdGC(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	store, err := ipam.Open(conf.DataDir, conf.subnet)
	if err != nil {
		return types.NewError(types.ErrIOFailure, "open ipam store", err.Error())
	}
	valid := make([]ipam.Owner, 0, len(conf.ValidAttachments))
	for _, a := range conf.ValidAttachments {
		valid = append(valid, ipam.Owner{ContainerID: a.ContainerID, IfName: a.IfName})
	}
	freed, err := store.Retain(valid)
	if err != nil {
		return internal("gc leases", err)
	}
	for _, o := range freed {
		if err := ip.DelLinkByName(hostVethName(o.ContainerID, o.IfName)); err != nil && !errors.Is(err, ip.ErrLinkNotFound) {
			return internal("gc host veth", err)
		}
	}
	return nil
}

// cmdStatus reports whether ADD could succeed now: the state is readable and
// the subnet has a free address.
func cmdStatus(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	store, err := ipam.Open(conf.DataDir, conf.subnet)
	if err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "ipam store unavailable", err.Error())
	}
	p, err := store.Snapshot()
	if err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "ipam store unreadable", err.Error())
	}
	free := (1 << (32 - conf.subnet.Bits())) - 3 - len(p.Leases)
	if free <= 0 {
		return types.NewError(types.ErrPluginNotAvailable, "subnet exhausted", conf.subnet.String())
	}
	if _, err := os.Stat("/proc/sys/net/ipv4/ip_forward"); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "no IPv4 forwarding", err.Error())
	}
	return nil
}
