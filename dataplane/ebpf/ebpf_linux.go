package ebpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/warrenhq/warren/dataplane"
)

// ebpfDataplane balances at the socket layer with cgroup sock_addr programs.
// Maps and links are pinned under PinDir, so Close leaves traffic flowing
// and the next New re-syncs from what the kernel holds.
type ebpfDataplane struct {
	mu     sync.Mutex
	log    *zap.Logger
	objs   SockLBObjects
	links  []link.Link
	tables *dataplane.Tables
	names  map[string]string // Service.ID → Service.Name for metrics
	np     *nodeport         // routing mesh; nil when off
	ce     *connErrors       // per-backend TCP errors; nil without BTF
}

// New loads the socket load balancer (and the routing mesh if
// opts.NodeportInterface is set), adopting what an earlier agent pinned in
// opts.PinDir. A host without cgroup v2, bpffs or the BPF features it needs
// yields an error wrapping dataplane.ErrNotSupported.
func New(opts Options) (dataplane.Dataplane, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.PinDir == "" || opts.CgroupPath == "" {
		return nil, errors.New("ebpf dataplane: PinDir and CgroupPath are required")
	}
	if err := requireFS(opts.CgroupPath, unix.CGROUP2_SUPER_MAGIC); err != nil {
		return nil, &dataplane.NotSupportedError{What: "cgroup v2 at " + opts.CgroupPath, Err: err}
	}
	// The pin dir may not exist yet; its nearest existing ancestor must be
	// on bpffs.
	existing := opts.PinDir
	for {
		if _, err := os.Stat(existing); err == nil || existing == "/" {
			break
		}
		existing = filepath.Dir(existing)
	}
	if err := requireFS(existing, unix.BPF_FS_MAGIC); err != nil {
		return nil, &dataplane.NotSupportedError{What: "bpffs for " + opts.PinDir, Err: err}
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, &dataplane.NotSupportedError{What: "bpf memlock", Err: err}
	}
	if err := os.MkdirAll(opts.PinDir, 0o700); err != nil {
		return nil, fmt.Errorf("pin dir: %w", err)
	}
	d := &ebpfDataplane{log: opts.Logger, names: map[string]string{}}
	err := LoadSockLBObjects(&d.objs, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: opts.PinDir}})
	if err != nil {
		if errors.Is(err, ebpf.ErrNotSupported) {
			return nil, &dataplane.NotSupportedError{What: "socket load-balancing programs", Err: err}
		}
		return nil, fmt.Errorf("load sock_lb: %w", err)
	}
	// Programs attached to a cgroup run for every process below it, so the
	// host root alone already covers the node's containers: attaching to
	// both would run each program twice on every connect from a task.
	scope, cg := "node", opts.CgroupPath
	if opts.AttachHostRoot {
		root := opts.HostRootCgroup
		if root == "" {
			if root, err = hostCgroup2Root(); err != nil {
				d.closeAll()
				return nil, &dataplane.NotSupportedError{What: "host cgroup v2 root", Err: err}
			}
		}
		scope, cg = "host", root
	}
	other := "host"
	if scope == "host" {
		other = "node"
	}
	progs := []struct {
		name string
		prog *ebpf.Program
		at   ebpf.AttachType
	}{
		{"connect4", d.objs.WarrenConnect4, ebpf.AttachCGroupInet4Connect},
		{"sendmsg4", d.objs.WarrenSendmsg4, ebpf.AttachCGroupUDP4Sendmsg},
		{"recvmsg4", d.objs.WarrenRecvmsg4, ebpf.AttachCGroupUDP4Recvmsg},
		{"getpeername4", d.objs.WarrenGetpeername4, ebpf.AttachCgroupInet4GetPeername},
	}
	for _, p := range progs {
		l, err := attachPinned(filepath.Join(opts.PinDir, "link_"+scope+"_"+p.name), cg, p.prog, p.at)
		if err != nil {
			d.closeAll()
			if errors.Is(err, ebpf.ErrNotSupported) {
				return nil, &dataplane.NotSupportedError{What: "cgroup " + p.name, Err: err}
			}
			return nil, fmt.Errorf("attach %s to %s: %w", p.name, cg, err)
		}
		d.links = append(d.links, l)
	}
	// Only now, with the programs in place at the scope wanted, are the
	// links of the other scope (an earlier agent's, or an earlier
	// --host-lb) detached: no connect in between goes unbalanced.
	for _, p := range progs {
		unpinLink(filepath.Join(opts.PinDir, "link_"+other+"_"+p.name))
	}
	if d.np, err = setupNodeport(opts, &d.objs.SockLBMaps); err != nil {
		d.closeAll()
		return nil, err
	}
	// Error counts feed canary analysis; the balancer works without them,
	// so a kernel without BTF costs only the counts (said once, here).
	if d.ce, err = setupConnErrors(opts.PinDir, &d.objs.SockLBMaps); err != nil {
		if !errors.Is(err, dataplane.ErrNotSupported) {
			d.closeAll()
			return nil, err
		}
		d.log.Warn("no per-backend connection error counters (canary analysis sees no errors)", zap.Error(err))
	}
	if d.tables, err = d.readTables(); err != nil {
		d.closeAll()
		return nil, fmt.Errorf("read pinned maps: %w", err)
	}
	return d, nil
}

// attachPinned reuses a link pinned by an earlier agent, swapping in the
// program just loaded (bpf_link update is atomic: no connect goes
// unbalanced), or attaches and pins a new one.
func attachPinned(pin, cgroup string, prog *ebpf.Program, at ebpf.AttachType) (link.Link, error) {
	if l, err := link.LoadPinnedLink(pin, nil); err == nil {
		if err := l.Update(prog); err == nil {
			return l, nil
		}
		// A link that cannot be updated (another cgroup, detached) is
		// replaced.
		l.Unpin()
		l.Close()
	}
	l, err := link.AttachCgroup(link.CgroupOptions{Path: cgroup, Attach: at, Program: prog})
	if err != nil {
		return nil, err
	}
	if err := l.Pin(pin); err != nil {
		l.Close()
		return nil, fmt.Errorf("pin link: %w", err)
	}
	return l, nil
}

func requireFS(path string, magic int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return err
	}
	if int64(st.Type) != magic {
		return fmt.Errorf("%s: filesystem type %#x, want %#x", path, st.Type, magic)
	}
	return nil
}

// hostCgroup2Root finds the mount point of the cgroup v2 hierarchy (it is
// /sys/fs/cgroup/unified on hybrid hosts).
func hostCgroup2Root() (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		for i, x := range f {
			if x == "-" && i+1 < len(f) && f[i+1] == "cgroup2" && len(f) > 4 && f[3] == "/" {
				return f[4], nil
			}
		}
	}
	return "", errors.New("no cgroup2 mount")
}

func (d *ebpfDataplane) Set(cfg *dataplane.Config) error {
	if cfg == nil {
		cfg = &dataplane.Config{}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ops, err := dataplane.Plan(d.tables, cfg)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	if err := d.syncLocalAddrs(); err != nil {
		return fmt.Errorf("local addresses: %w", err)
	}
	for _, s := range cfg.Services {
		d.names[s.ID] = s.Name
	}
	w := kernelWriter{d: d}
	for _, o := range ops {
		if err := w.Apply(o); err != nil {
			// The kernel holds a prefix of the plan; re-read so the next Set
			// diffs against the truth.
			if t, rerr := d.readTables(); rerr == nil {
				d.tables = t
			}
			return fmt.Errorf("%v: %w", o, err)
		}
		d.tables.Apply(o)
	}
	d.pruneCounters()
	return nil
}

func (d *ebpfDataplane) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closeAll()
}

// closeAll drops this process's handles; pins keep maps and links alive.
func (d *ebpfDataplane) closeAll() error {
	var errs []error
	for _, l := range d.links {
		errs = append(errs, l.Close())
	}
	d.links = nil
	if d.np != nil {
		errs = append(errs, d.np.close())
		d.np = nil
	}
	if d.ce != nil {
		errs = append(errs, d.ce.close())
		d.ce = nil
	}
	errs = append(errs, d.objs.Close())
	return errors.Join(errs...)
}

// Unpin removes a node's pinned maps and links, detaching its programs. It
// is for uninstall and tests; a restarting agent must not call it.
func Unpin(pinDir string) error { return os.RemoveAll(pinDir) }

func addrU32(a netip.Addr) uint32 {
	if !a.Is4() {
		return 0 // deletes carry no value
	}
	b := a.As4()
	return binary.NativeEndian.Uint32(b[:])
}

func u32Addr(v uint32) netip.Addr {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// nport converts a port to the network-order value the kernel compares.
func nport(p uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], p)
	return binary.NativeEndian.Uint16(b[:])
}

func hport(p uint16) uint16 { return nport(p) }

func nameVal(s string) SockLBNameVal {
	var v SockLBNameVal
	for i := 0; i < len(s) && i < len(v.Name)-1; i++ {
		v.Name[i] = int8(s[i])
	}
	return v
}

func valName(v SockLBNameVal) string {
	b := make([]byte, 0, len(v.Name))
	for _, c := range v.Name {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(bytes.Clone(b))
}

type kernelWriter struct{ d *ebpfDataplane }

func (w kernelWriter) Apply(o dataplane.Op) error {
	m := w.d.objs.SockLBMaps
	put := func(mp *ebpf.Map, k, v any) error {
		if o.Delete {
			if err := mp.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return err
			}
			return nil
		}
		return mp.Put(k, v)
	}
	switch o.Map {
	case dataplane.MapServiceNames:
		return put(m.ServiceNames, o.ID, nameVal(o.Name))
	case dataplane.MapBackendNames:
		return put(m.BackendNames, o.ID, nameVal(o.Name))
	case dataplane.MapBackends:
		return put(m.Backends, o.ID, SockLBBackendVal{Addr: addrU32(o.Addr)})
	case dataplane.MapSlots:
		return put(m.Slots, SockLBSlotKey{Service: o.Slot.Service, Rev: o.Slot.Rev, Slot: o.Slot.Slot}, o.Backend)
	case dataplane.MapFrontends:
		k := SockLBFrontendKey{Addr: addrU32(o.Frontend.Addr), Port: nport(o.Frontend.Port), Proto: uint8(o.Frontend.Proto)}
		v := SockLBFrontendVal{Service: o.FrontVal.Service, Rev: o.FrontVal.Rev, Count: o.FrontVal.Count, TargetPort: nport(o.FrontVal.TargetPort)}
		return put(m.Frontends, k, v)
	}
	return fmt.Errorf("unknown map %v", o.Map)
}

// readTables reads the pinned maps back into the model Plan diffs against.
func (d *ebpfDataplane) readTables() (*dataplane.Tables, error) {
	t := dataplane.NewTables()
	m := d.objs.SockLBMaps
	var id uint32
	var name SockLBNameVal
	it := m.ServiceNames.Iterate()
	for it.Next(&id, &name) {
		t.ServiceNames[id] = valName(name)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("service_names: %w", err)
	}
	it = m.BackendNames.Iterate()
	for it.Next(&id, &name) {
		t.BackendNames[id] = valName(name)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("backend_names: %w", err)
	}
	var bv SockLBBackendVal
	it = m.Backends.Iterate()
	for it.Next(&id, &bv) {
		t.Backends[id] = u32Addr(bv.Addr)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("backends: %w", err)
	}
	var sk SockLBSlotKey
	var sv uint32
	it = m.Slots.Iterate()
	for it.Next(&sk, &sv) {
		t.Slots[dataplane.SlotKey{Service: sk.Service, Rev: sk.Rev, Slot: sk.Slot}] = sv
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("slots: %w", err)
	}
	var fk SockLBFrontendKey
	var fv SockLBFrontendVal
	it = m.Frontends.Iterate()
	for it.Next(&fk, &fv) {
		k := dataplane.FrontendKey{Addr: u32Addr(fk.Addr), Port: hport(fk.Port), Proto: dataplane.Protocol(fk.Proto)}
		t.Frontends[k] = dataplane.FrontendVal{Service: fv.Service, Rev: fv.Rev, Count: fv.Count, TargetPort: hport(fv.TargetPort)}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("frontends: %w", err)
	}
	return t, nil
}

// syncLocalAddrs makes published ports answer on the node's own IPv4
// addresses (loopback is matched in the program itself).
func (d *ebpfDataplane) syncLocalAddrs() error {
	want := map[uint32]bool{}
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return err
	}
	for _, a := range ifaddrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() && !p.Addr().IsLoopback() {
			want[addrU32(p.Addr())] = true
		}
	}
	m := d.objs.LocalAddrs
	var k uint32
	var v uint8
	var stale []uint32
	it := m.Iterate()
	for it.Next(&k, &v) {
		if !want[k] {
			stale = append(stale, k)
		}
	}
	for _, k := range stale {
		m.Delete(k)
	}
	for k := range want {
		if err := m.Put(k, uint8(1)); err != nil {
			return err
		}
	}
	return nil
}

// pruneCounters drops counters of services and backends that are gone, so
// ids reused later start from zero.
func (d *ebpfDataplane) pruneCounters() {
	m := d.objs.SockLBMaps
	for _, mp := range []*ebpf.Map{m.ServiceConns, m.NoBackendDrops} {
		var k uint32
		var stale []uint32
		it := mp.Iterate()
		var vals []uint64
		for it.Next(&k, &vals) {
			if _, ok := d.tables.ServiceNames[k]; !ok {
				stale = append(stale, k)
			}
		}
		for _, k := range stale {
			mp.Delete(k)
		}
	}
	var bk SockLBBackendCounterKey
	var vals []uint64
	var stale []SockLBBackendCounterKey
	it := m.BackendConns.Iterate()
	for it.Next(&bk, &vals) {
		_, s := d.tables.ServiceNames[bk.Service]
		_, b := d.tables.BackendNames[bk.Backend]
		if !s || !b {
			stale = append(stale, bk)
		}
	}
	for _, k := range stale {
		m.BackendConns.Delete(k)
	}
	var ek SockLBConnBackend
	var evals []SockLBBackendErrorsVal
	var estale []SockLBConnBackend
	eit := m.BackendErrors.Iterate()
	for eit.Next(&ek, &evals) {
		_, s := d.tables.ServiceNames[ek.Service]
		_, b := d.tables.BackendNames[ek.Backend]
		if !s || !b {
			estale = append(estale, ek)
		}
	}
	for _, k := range estale {
		m.BackendErrors.Delete(k)
	}
}

// Counters implements CounterSource by summing the per-CPU counter maps.
func (d *ebpfDataplane) Counters() ([]dataplane.ServiceCounters, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.objs.SockLBMaps
	bySvc := map[uint32]*dataplane.ServiceCounters{}
	get := func(id uint32) *dataplane.ServiceCounters {
		c := bySvc[id]
		if c == nil {
			sid := d.tables.ServiceNames[id]
			name := d.names[sid]
			if name == "" {
				name = sid
			}
			c = &dataplane.ServiceCounters{Service: name, Backends: map[string]uint64{}}
			bySvc[id] = c
		}
		return c
	}
	sum := func(vs []uint64) (n uint64) {
		for _, v := range vs {
			n += v
		}
		return n
	}
	var errs []error
	var k uint32
	var vals []uint64
	it := m.ServiceConns.Iterate()
	for it.Next(&k, &vals) {
		if _, ok := d.tables.ServiceNames[k]; ok {
			get(k).Connections = sum(vals)
		}
	}
	errs = append(errs, it.Err())
	it = m.NoBackendDrops.Iterate()
	for it.Next(&k, &vals) {
		if _, ok := d.tables.ServiceNames[k]; ok {
			get(k).Drops = sum(vals)
		}
	}
	errs = append(errs, it.Err())
	var bk SockLBBackendCounterKey
	it = m.BackendConns.Iterate()
	for it.Next(&bk, &vals) {
		name, ok := d.tables.BackendNames[bk.Backend]
		if _, sok := d.tables.ServiceNames[bk.Service]; !ok || !sok {
			continue
		}
		task, _, _ := strings.Cut(name, "@")
		get(bk.Service).Backends[task] += sum(vals)
	}
	errs = append(errs, it.Err())
	var ek SockLBConnBackend
	var evals []SockLBBackendErrorsVal
	eit := m.BackendErrors.Iterate()
	for eit.Next(&ek, &evals) {
		name, ok := d.tables.BackendNames[ek.Backend]
		if _, sok := d.tables.ServiceNames[ek.Service]; !ok || !sok {
			continue
		}
		task, _, _ := strings.Cut(name, "@")
		c := get(ek.Service)
		if c.Errors == nil {
			c.Errors = map[string]dataplane.BackendErrors{}
		}
		e := c.Errors[task]
		for _, v := range evals {
			e.ConnectFailures += v.ConnectFailures
			e.Resets += v.Resets
		}
		c.Errors[task] = e
	}
	errs = append(errs, eit.Err())
	out := make([]dataplane.ServiceCounters, 0, len(bySvc))
	for _, id := range slices.Sorted(maps.Keys(bySvc)) {
		out = append(out, *bySvc[id])
	}
	return out, errors.Join(errs...)
}
