package mesh

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// routeProto marks the routes this package installs so it can find and
// reconcile them without touching routes others put on the interface.
const routeProto netlink.RouteProtocol = 0x57 // 'W'

// device is the WireGuard half that differs between kernel and userspace;
// the interface address and routes are plain netlink for both.
type wgDevice interface {
	apply(Plan) error
	close() error
	mode() string
}

type linuxMesh struct {
	mu      sync.Mutex
	opts    Options
	key     wgtypes.Key
	dev     wgDevice
	applied *Config
	closed  bool
}

// New creates the WireGuard interface named opts.IfName in the calling
// process's network namespace, with the node's key, and no peers.
func New(opts Options) (Mesh, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	key, err := loadOrCreateKey(opts.KeyFile)
	if err != nil {
		return nil, err
	}
	probe := func() error { return probeKernel(opts.IfName, opts.MTU) }
	if opts.Persist && opts.Mode != ModeKernel && uapiAlive(opts.IfName) {
		// A device process from a previous run still carries the traffic.
		probe = func() error { return fmt.Errorf("userspace device running: %w", ErrNotSupported) }
	}
	mode, err := chooseMode(opts.Mode, probe)
	if err != nil {
		return nil, fmt.Errorf("mesh: %s mode: %w", opts.Mode, err)
	}
	var dev wgDevice
	var seed *Config
	switch {
	case opts.Persist:
		if mode == ModeUserspace {
			if err := ensureDevice(opts); err != nil {
				return nil, err
			}
		}
		dev, seed, err = adoptDevice(opts.IfName, key, mode)
	case mode == ModeKernel:
		dev, err = newKernelDevice(opts.IfName, key)
	default:
		if opts.Mode == ModeAuto {
			opts.Logger.Info("kernel WireGuard not available, using wireguard-go on TUN", zap.String("if", opts.IfName))
		}
		dev, err = newUserspaceDevice(opts.IfName, opts.MTU, key, opts.Logger)
	}
	if err != nil {
		return nil, err
	}
	m := &linuxMesh{opts: opts, key: key, dev: dev, applied: &Config{}}
	if seed != nil {
		// Diff the first Set against what the surviving device holds, so
		// a restart changes nothing that is already right.
		m.applied = seed
	}
	link, err := netlink.LinkByName(opts.IfName)
	if err == nil {
		err = netlink.LinkSetMTU(link, opts.MTU)
	}
	if err == nil {
		err = netlink.LinkSetUp(link)
	}
	if err != nil {
		_ = m.Close()
		return nil, fmt.Errorf("mesh: bring up %s: %w", opts.IfName, err)
	}
	return m, nil
}

// probeKernel creates the kernel WireGuard link, which New then keeps. A
// kernel without the module answers EOPNOTSUPP ("Unknown device type").
func probeKernel(name string, mtu int) error {
	la := netlink.NewLinkAttrs()
	la.Name = name
	la.MTU = mtu
	err := netlink.LinkAdd(&netlink.Wireguard{LinkAttrs: la})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.ENOTSUP):
		return fmt.Errorf("create wireguard link: %w: %w", ErrNotSupported, err)
	case errors.Is(err, syscall.EEXIST):
		l, lerr := netlink.LinkByName(name)
		if lerr == nil && l.Type() == "wireguard" {
			return nil // left by a previous run: reuse it
		}
		return fmt.Errorf("create wireguard link: %s exists and is not wireguard: %w", name, err)
	}
	return fmt.Errorf("create wireguard link: %w", err)
}

// Mode is the implementation in use: kernel or userspace.
func (m *linuxMesh) Mode() string { return m.dev.mode() }

func (m *linuxMesh) PublicKey() string { return m.key.PublicKey().String() }

func validateConfig(c *Config, own string) error {
	seen := map[string]bool{}
	for _, p := range c.Peers {
		if _, err := wgtypes.ParseKey(p.PublicKey); err != nil {
			return fmt.Errorf("peer %q: %w", p.PublicKey, err)
		}
		if p.PublicKey == own {
			return fmt.Errorf("peer %s is this node", p.PublicKey)
		}
		if seen[p.PublicKey] {
			return fmt.Errorf("peer %s listed twice", p.PublicKey)
		}
		seen[p.PublicKey] = true
		for _, a := range p.AllowedIPs {
			if !a.IsValid() {
				return fmt.Errorf("peer %s: invalid allowed IP", p.PublicKey)
			}
		}
	}
	if c.Address.IsValid() && !c.Address.Addr().Is4() {
		return fmt.Errorf("address %s: only IPv4 overlays", c.Address)
	}
	return nil
}

func (m *linuxMesh) Set(c *Config) error {
	if c == nil {
		c = &Config{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("mesh: closed")
	}
	if err := validateConfig(c, m.PublicKey()); err != nil {
		return fmt.Errorf("mesh: %w", err)
	}
	plan := Diff(m.applied, c)
	if err := m.dev.apply(plan); err != nil {
		return fmt.Errorf("mesh: configure peers: %w", err)
	}
	// Record each part as soon as it is applied, so that after a failure the
	// next Set diffs against what the device really holds.
	want := c.Clone()
	m.applied.ListenPort, m.applied.Peers = want.ListenPort, want.Peers
	link, err := netlink.LinkByName(m.opts.IfName)
	if err != nil {
		return fmt.Errorf("mesh: find %s: %w", m.opts.IfName, err)
	}
	if err := syncAddress(link, m.applied.Address, want.Address); err != nil {
		return err
	}
	m.applied.Address = want.Address
	// Routes are reconciled against the kernel's table, not against memory.
	return syncRoutes(link, routesOf(want), want.Address)
}

func syncAddress(link netlink.Link, old, want netip.Prefix) error {
	if want.IsValid() {
		a := prefixIPNet(want)
		if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: &a}); err != nil {
			return fmt.Errorf("mesh: set address %s: %w", want, err)
		}
	}
	if old.IsValid() && old != want {
		a := prefixIPNet(old)
		if err := netlink.AddrDel(link, &netlink.Addr{IPNet: &a}); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
			return fmt.Errorf("mesh: remove address %s: %w", old, err)
		}
	}
	return nil
}

// syncRoutes makes the routes marked as ours on link exactly want. It reads
// the kernel's table rather than trusting memory, so a route deleted by hand
// comes back on the next Set.
func syncRoutes(link netlink.Link, want []netip.Prefix, src netip.Prefix) error {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{LinkIndex: link.Attrs().Index, Protocol: routeProto},
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return fmt.Errorf("mesh: list routes: %w", err)
	}
	var have []netip.Prefix
	byPrefix := map[netip.Prefix]netlink.Route{}
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		a, _ := netip.AddrFromSlice(r.Dst.IP.To4())
		have = append(have, netip.PrefixFrom(a, ones))
		byPrefix[netip.PrefixFrom(a, ones)] = r
	}
	add, del := DiffPrefixes(have, want)
	for _, p := range del {
		// Delete the route as listed: the kernel matches scope and table,
		// and a hand-built route with the zero scope would miss it.
		r := byPrefix[p]
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("mesh: delete route %s: %w", p, err)
		}
	}
	for _, p := range add {
		dst := prefixIPNet(p)
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: &dst, Protocol: routeProto, Scope: netlink.SCOPE_LINK}
		if src.IsValid() {
			// Node-originated packets to peer pods leave with the node's
			// overlay address, which the peer allows and routes back.
			r.Src = net.IP(src.Addr().AsSlice())
		}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("mesh: add route %s: %w", p, err)
		}
	}
	return nil
}

func (m *linuxMesh) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	return m.dev.close()
}
