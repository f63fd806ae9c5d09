package ebpf

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/warrenhq/warren/dataplane"
)

// nodeport is the routing mesh (bpf/nodeport.c): TCX programs on the uplink
// (and the mesh interface) that DNAT published ports to backends picked from
// the socket balancer's own slot tables.
type nodeport struct {
	objs  NodeportObjects
	links []link.Link
}

// Pins of the routing mesh's links, next to the socket balancer's.
var nodeportLinks = []string{"link_np_ingress", "link_np_egress", "link_np_mesh"}

// setupNodeport attaches (or re-attaches, or removes) the routing mesh as
// opts ask. It is idempotent: a second call with the same options swaps the
// programs in the pinned links and rewrites the same map contents.
func setupNodeport(opts Options, lb *SockLBMaps) (*nodeport, error) {
	if opts.NodeportInterface == "" {
		// Off: detach whatever an earlier agent attached.
		for _, name := range nodeportLinks {
			unpinLink(filepath.Join(opts.PinDir, name))
		}
		return nil, nil
	}
	uplink, err := net.InterfaceByName(opts.NodeportInterface)
	if err != nil {
		return nil, fmt.Errorf("nodeport interface: %w", err)
	}
	mesh, meshL2 := 0, false
	if opts.MeshInterface != "" {
		m, err := net.InterfaceByName(opts.MeshInterface)
		if err != nil {
			return nil, fmt.Errorf("mesh interface: %w", err)
		}
		if !opts.MeshAddr.Is4() {
			return nil, fmt.Errorf("mesh address %v: want IPv4", opts.MeshAddr)
		}
		mesh = m.Index
		meshL2 = len(m.HardwareAddr) != 0
		// Replies from remote backends leave the mesh program with the
		// node's own address as their source and are then routed to the
		// client: the mesh interface must accept a local source address,
		// and reverse-path filtering must not drop it (loose mode at most).
		for _, kv := range [][2]string{{"accept_local", "1"}, {"rp_filter", "0"}} {
			p := filepath.Join("/proc/sys/net/ipv4/conf", opts.MeshInterface, kv[0])
			if err := os.WriteFile(p, []byte(kv[1]), 0o644); err != nil {
				return nil, fmt.Errorf("mesh interface %s: %s: %w", opts.MeshInterface, kv[0], err)
			}
		}
	}
	addrs := opts.NodeAddrs
	if len(addrs) == 0 {
		if addrs, err = ifaceAddrs4(uplink); err != nil {
			return nil, fmt.Errorf("nodeport addresses: %w", err)
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("nodeport interface %s: no IPv4 address", uplink.Name)
	}
	for _, a := range addrs {
		if !a.Is4() {
			return nil, fmt.Errorf("node address %v: want IPv4", a)
		}
	}
	if opts.NodeSubnet.IsValid() && !opts.NodeSubnet.Addr().Is4() {
		return nil, fmt.Errorf("node subnet %v: want IPv4", opts.NodeSubnet)
	}

	np := &nodeport{}
	err = LoadNodeportObjects(&np.objs, &ebpf.CollectionOptions{
		Maps: ebpf.MapOptions{PinPath: opts.PinDir},
		// One slot table per node: the routing mesh reads the maps the
		// socket balancer's Set writes.
		MapReplacements: map[string]*ebpf.Map{
			NodeportMapFrontends:      lb.Frontends,
			NodeportMapSlots:          lb.Slots,
			NodeportMapBackends:       lb.Backends,
			NodeportMapServiceConns:   lb.ServiceConns,
			NodeportMapBackendConns:   lb.BackendConns,
			NodeportMapNoBackendDrops: lb.NoBackendDrops,
		},
	})
	if err != nil {
		if errors.Is(err, ebpf.ErrNotSupported) {
			return nil, &dataplane.NotSupportedError{What: "routing mesh programs", Err: err}
		}
		return nil, fmt.Errorf("load nodeport: %w", err)
	}
	if err := np.configure(opts, uplink.Index, mesh, meshL2, addrs); err != nil {
		np.close()
		return nil, err
	}
	attach := []struct {
		pin     string
		ifindex int
		prog    *ebpf.Program
		at      ebpf.AttachType
	}{
		{"link_np_ingress", uplink.Index, np.objs.WarrenNpIngress, ebpf.AttachTCXIngress},
		{"link_np_egress", uplink.Index, np.objs.WarrenNpEgress, ebpf.AttachTCXEgress},
		{"link_np_mesh", mesh, np.objs.WarrenNpMesh, ebpf.AttachTCXIngress},
	}
	for _, a := range attach {
		pin := filepath.Join(opts.PinDir, a.pin)
		if a.ifindex == 0 {
			unpinLink(pin)
			continue
		}
		l, err := attachTCXPinned(pin, a.ifindex, a.prog, a.at)
		if err != nil {
			np.close()
			return nil, err
		}
		np.links = append(np.links, l)
	}
	return np, nil
}

// configure writes np_config and np_addrs. The hash seed is kept across
// restarts so that flows whose conntrack entry was evicted keep their
// backend.
func (np *nodeport) configure(opts Options, uplink, mesh int, meshL2 bool, addrs []netip.Addr) error {
	var cfg NodeportNpConfig
	if err := np.objs.NpConfig.Lookup(uint32(0), &cfg); err != nil {
		return fmt.Errorf("np_config: %w", err)
	}
	if cfg.Seed == 0 {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		cfg.Seed = binary.NativeEndian.Uint32(b[:]) | 1
	}
	cfg.Subnet, cfg.Mask = 0, 0
	if p := opts.NodeSubnet.Masked(); p.IsValid() {
		cfg.Subnet = addrU32(p.Addr())
		mask := net.CIDRMask(p.Bits(), 32)
		cfg.Mask = binary.NativeEndian.Uint32(mask)
	}
	cfg.SnatAddr = 0
	if mesh != 0 {
		cfg.SnatAddr = addrU32(opts.MeshAddr)
	}
	cfg.MeshIfindex = uint32(mesh)
	cfg.MeshL2 = 0
	if meshL2 {
		cfg.MeshL2 = 1
	}
	cfg.UplinkIfindex = uint32(uplink)
	if err := np.objs.NpConfig.Put(uint32(0), cfg); err != nil {
		return fmt.Errorf("np_config: %w", err)
	}

	want := map[uint32]bool{}
	for _, a := range addrs {
		want[addrU32(a)] = true
	}
	var k uint32
	var v uint8
	var stale []uint32
	it := np.objs.NpAddrs.Iterate()
	for it.Next(&k, &v) {
		if !want[k] {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("np_addrs: %w", err)
	}
	for _, k := range stale {
		if err := np.objs.NpAddrs.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("np_addrs: %w", err)
		}
	}
	for k := range want {
		if err := np.objs.NpAddrs.Put(k, uint8(1)); err != nil {
			return fmt.Errorf("np_addrs: %w", err)
		}
	}
	return nil
}

func (np *nodeport) close() error {
	var errs []error
	for _, l := range np.links {
		errs = append(errs, l.Close())
	}
	np.links = nil
	errs = append(errs, np.objs.Close())
	return errors.Join(errs...)
}

// attachTCXPinned reuses a TCX link pinned by an earlier agent on the same
// interface, swapping in the program just loaded (atomic: no packet goes
// untranslated), or attaches and pins a new one.
func attachTCXPinned(pin string, ifindex int, prog *ebpf.Program, at ebpf.AttachType) (link.Link, error) {
	if l, err := link.LoadPinnedLink(pin, nil); err == nil {
		info, ierr := l.Info()
		// A link whose interface went away is defunct (ifindex 0); one on
		// another interface is stale config. Both are replaced.
		if ierr == nil && info.TCX() != nil && int(info.TCX().Ifindex) == ifindex {
			if err := l.Update(prog); err == nil {
				return l, nil
			}
		}
		l.Unpin()
		l.Close()
	}
	l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: at})
	if err != nil {
		if errors.Is(err, ebpf.ErrNotSupported) {
			return nil, &dataplane.NotSupportedError{What: "tcx", Err: err}
		}
		return nil, fmt.Errorf("attach tcx to ifindex %d: %w", ifindex, err)
	}
	if err := l.Pin(pin); err != nil {
		l.Close()
		return nil, fmt.Errorf("pin link: %w", err)
	}
	return l, nil
}

// unpinLink detaches a pinned link if there is one.
func unpinLink(pin string) {
	if l, err := link.LoadPinnedLink(pin, nil); err == nil {
		l.Unpin()
		l.Close()
		return
	}
	os.Remove(pin)
}

func ifaceAddrs4(ifc *net.Interface) ([]netip.Addr, error) {
	as, err := ifc.Addrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range as {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
			out = append(out, p.Addr())
		}
	}
	return out, nil
}
