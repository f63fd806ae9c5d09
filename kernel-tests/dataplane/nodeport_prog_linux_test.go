package dataplanetest

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"

	bpf "github.com/warrenhq/warren/dataplane/ebpf"
	"github.com/warrenhq/warren/kernel-tests/ktest"
)

// TCX verdicts as the programs return them.
const (
	tcxNext     = ^uint32(0) // -1
	tcxPass     = 0
	tcxDrop     = 2
	tcRedirect  = 7
	ipTCP       = 6
	ipUDP       = 17
	snatPortMin = 61000
)

// packet is a crafted IPv4 TCP/UDP packet.
type packet struct {
	proto    uint8
	src, dst netip.AddrPort
	payload  []byte
	noCsum   bool  // UDP without checksum
	flags    uint8 // TCP flags; 0 means SYN (a new connection)
}

const tcpACK = 0x10

// bytes renders p behind an Ethernet header, with valid checksums.
func (p packet) bytes() []byte {
	l4len := 20
	if p.proto == ipUDP {
		l4len = 8
	}
	b := make([]byte, 14+20+l4len+len(p.payload))
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	binary.BigEndian.PutUint16(ip[4:], 0x1234)
	ip[8] = 64
	ip[9] = p.proto
	s, d := p.src.Addr().As4(), p.dst.Addr().As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	binary.BigEndian.PutUint16(ip[10:], ^sum16(ip[:20], 0))
	l4 := ip[20:]
	binary.BigEndian.PutUint16(l4[0:], p.src.Port())
	binary.BigEndian.PutUint16(l4[2:], p.dst.Port())
	if p.proto == ipTCP {
		binary.BigEndian.PutUint32(l4[4:], 1000)
		l4[12] = 5 << 4
		l4[13] = p.flags
		if p.flags == 0 {
			l4[13] = 0x02 // SYN
		}
		binary.BigEndian.PutUint16(l4[14:], 65535)
		copy(l4[20:], p.payload)
		binary.BigEndian.PutUint16(l4[16:], ^sum16(l4, pseudo(ip)))
	} else {
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
		copy(l4[8:], p.payload)
		if !p.noCsum {
			c := ^sum16(l4, pseudo(ip))
			if c == 0 {
				c = 0xffff
			}
			binary.BigEndian.PutUint16(l4[6:], c)
		}
	}
	return b
}

func pseudo(ip []byte) uint32 {
	var s uint32
	for i := 12; i < 20; i += 2 {
		s += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	return s + uint32(ip[9]) + uint32(len(ip)-20)
}

func sum16(b []byte, init uint32) uint16 {
	s := init
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// parsePacket reads a packet back and fails t unless both checksums hold.
func parsePacket(t *testing.T, b []byte, l3off int) packet {
	t.Helper()
	ip := b[l3off:]
	if sum16(ip[:20], 0) != 0xffff {
		t.Fatalf("bad IPv4 header checksum in % x", ip[:20])
	}
	l4 := ip[20:]
	p := packet{proto: ip[9]}
	p.src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[12:16])), binary.BigEndian.Uint16(l4[0:]))
	p.dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[16:20])), binary.BigEndian.Uint16(l4[2:]))
	if p.proto == ipUDP && binary.BigEndian.Uint16(l4[6:]) == 0 {
		p.noCsum = true
		return p
	}
	if sum16(l4, pseudo(ip)) != 0xffff {
		t.Fatalf("bad %d checksum after translation to %v → %v", p.proto, p.src, p.dst)
	}
	return p
}

// npObjects loads bpf/nodeport.c on its own maps (the dataplane hands it
// sock_lb's instead) so tests can fill them directly.
func npObjects(t *testing.T) *bpf.NodeportObjects {
	t.Helper()
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	pins := pinDir(t, t.Name())
	if err := os.MkdirAll(pins, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pins) })
	var objs bpf.NodeportObjects
	if err := bpf.LoadNodeportObjects(&objs, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: pins}}); err != nil {
		t.Fatalf("load nodeport: %v", err)
	}
	t.Cleanup(func() { objs.Close() })
	return &objs
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.NativeEndian.Uint32(b[:])
}

func nport16(p uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], p)
	return binary.NativeEndian.Uint16(b[:])
}

type npFixture struct {
	t    *testing.T
	objs *bpf.NodeportObjects
}

func (f npFixture) put(m *ebpf.Map, k, v any) {
	f.t.Helper()
	if err := m.Put(k, v); err != nil {
		f.t.Fatal(err)
	}
}

// service installs a published port whose slot table (revision rev) names
// the given backend ids.
func (f npFixture) service(id, rev uint32, proto uint8, published, target uint16, slots ...uint32) {
	for i, b := range slots {
		f.put(f.objs.Slots, bpf.NodeportSlotKey{Service: id, Rev: rev, Slot: uint32(i)}, b)
	}
	f.put(f.objs.Frontends, bpf.NodeportFrontendKey{Port: nport16(published), Proto: proto},
		bpf.NodeportFrontendVal{Service: id, Rev: rev, Count: uint32(len(slots)), TargetPort: nport16(target)})
}

func (f npFixture) backend(id uint32, a netip.Addr) {
	f.put(f.objs.Backends, id, bpf.NodeportBackendVal{Addr: u32(a)})
}

func (f npFixture) run(prog *ebpf.Program, in []byte, ctx any) (uint32, []byte) {
	f.t.Helper()
	out := make([]byte, len(in)+64)
	ret, err := prog.Run(&ebpf.RunOptions{Data: in, DataOut: out, Context: ctx})
	if err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
		f.t.Fatalf("test run: %v", err)
	} else if err != nil {
		f.t.Fatalf("kernel test requirement missing: BPF_PROG_TEST_RUN for tcx: %v", err)
	}
	return ret, out[:len(in)]
}

var (
	npNode   = netip.MustParseAddr("192.0.2.1")
	npClient = netip.MustParseAddr("198.51.100.7")
	npB1     = netip.MustParseAddr("10.98.0.11")
	npB2     = netip.MustParseAddr("10.98.0.12")
	npRemote = netip.MustParseAddr("10.97.5.20")
	npMesh   = netip.MustParseAddr("10.98.0.1")
)

func newNPFixture(t *testing.T) npFixture {
	f := npFixture{t, npObjects(t)}
	f.put(f.objs.NpAddrs, u32(npNode), uint8(1))
	f.put(f.objs.NpConfig, uint32(0), bpf.NodeportNpConfig{Seed: 7, UplinkIfindex: 1})
	f.backend(1, npB1)
	f.backend(2, npB2)
	return f
}

// TestNodeportProgDNAT: a client's TCP and UDP packets to node:published
// are DNATed to the backend with valid checksums and the source kept; the
// backend's replies get node:published back as their source.
func TestNodeportProgDNAT(t *testing.T) {
	ktest.Root(t)
	f := newNPFixture(t)
	f.service(1, 1, ipTCP, 8080, 80, 1)
	f.service(2, 1, ipUDP, 5353, 53, 2)
	cases := []struct {
		name    string
		in      packet
		backend netip.AddrPort
	}{
		{"tcp", packet{proto: ipTCP, src: netip.AddrPortFrom(npClient, 40000), dst: netip.AddrPortFrom(npNode, 8080), payload: []byte("hello")},
			netip.AddrPortFrom(npB1, 80)},
		{"udp", packet{proto: ipUDP, src: netip.AddrPortFrom(npClient, 40001), dst: netip.AddrPortFrom(npNode, 5353), payload: []byte("query!")},
			netip.AddrPortFrom(npB2, 53)},
		{"udp-no-checksum", packet{proto: ipUDP, src: netip.AddrPortFrom(npClient, 40002), dst: netip.AddrPortFrom(npNode, 5353), payload: []byte("q"), noCsum: true},
			netip.AddrPortFrom(npB2, 53)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := npFixture{t, f.objs}
			ret, out := f.run(f.objs.WarrenNpIngress, c.in.bytes(), nil)
			if ret != tcxPass {
				t.Fatalf("ingress verdict %d, want pass", int32(ret))
			}
			got := parsePacket(t, out, 14)
			if got.src != c.in.src || got.dst != c.backend {
				t.Fatalf("ingress: %v → %v, want %v → %v", got.src, got.dst, c.in.src, c.backend)
			}
			if got.noCsum != c.in.noCsum {
				t.Fatalf("UDP checksum presence changed: %v", got.noCsum)
			}
			reply := packet{proto: c.in.proto, src: c.backend, dst: c.in.src, payload: []byte("answer"), noCsum: c.in.noCsum}
			ret, out = f.run(f.objs.WarrenNpEgress, reply.bytes(), nil)
			if ret != tcxNext {
				t.Fatalf("egress verdict %d, want next", int32(ret))
			}
			got = parsePacket(t, out, 14)
			if got.src != c.in.dst || got.dst != c.in.src {
				t.Fatalf("reply: %v → %v, want %v → %v", got.src, got.dst, c.in.dst, c.in.src)
			}
		})
	}
}

// TestNodeportProgIgnores: traffic that is not for a published port on a
// node address passes untouched, and replies of unknown flows too.
func TestNodeportProgIgnores(t *testing.T) {
	ktest.Root(t)
	f := newNPFixture(t)
	f.service(1, 1, ipTCP, 8080, 80, 1)
	for _, p := range []packet{
		{proto: ipTCP, src: netip.AddrPortFrom(npClient, 40000), dst: netip.AddrPortFrom(npNode, 22)},
		{proto: ipUDP, src: netip.AddrPortFrom(npClient, 40000), dst: netip.AddrPortFrom(npNode, 8080)},
		{proto: ipTCP, src: netip.AddrPortFrom(npClient, 40000), dst: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.99"), 8080)},
	} {
		in := p.bytes()
		ret, out := f.run(f.objs.WarrenNpIngress, in, nil)
		if ret != tcxNext || string(out) != string(in) {
			t.Errorf("%v → %v/%d: verdict %d, changed %v", p.src, p.dst, p.proto, int32(ret), string(out) != string(in))
		}
	}
	in := packet{proto: ipTCP, src: netip.AddrPortFrom(npB1, 80), dst: netip.AddrPortFrom(npClient, 1)}.bytes()
	if ret, out := f.run(f.objs.WarrenNpEgress, in, nil); ret != tcxNext || string(out) != string(in) {
		t.Errorf("unknown reply: verdict %d, changed %v", int32(ret), string(out) != string(in))
	}
}

// TestNodeportProgSticky: a flow keeps its backend when the slot table
// changes; new flows use the new table. A service without backends drops.
func TestNodeportProgSticky(t *testing.T) {
	ktest.Root(t)
	f := newNPFixture(t)
	f.service(1, 1, ipTCP, 8080, 80, 1, 2)
	send := func(sport uint16, flags uint8) netip.AddrPort {
		t.Helper()
		in := packet{proto: ipTCP, src: netip.AddrPortFrom(npClient, sport), dst: netip.AddrPortFrom(npNode, 8080), flags: flags}
		ret, out := f.run(f.objs.WarrenNpIngress, in.bytes(), nil)
		if ret != tcxPass {
			t.Fatalf("verdict %d", int32(ret))
		}
		return parsePacket(t, out, 14).dst
	}
	flow := func(sport uint16) netip.AddrPort { return send(sport, 0) }
	seen := map[netip.AddrPort]int{}
	first := map[uint16]netip.AddrPort{}
	for sport := uint16(30000); sport < 30200; sport++ {
		first[sport] = flow(sport)
		seen[first[sport]]++
	}
	if len(seen) != 2 {
		t.Fatalf("200 flows over two slots reached %v", seen)
	}
	// Revision 2 names only backend 2: flows already seen stay put.
	f.service(1, 2, ipTCP, 8080, 80, 2)
	for sport, want := range first {
		if got := send(sport, tcpACK); got != want {
			t.Fatalf("flow from port %d moved from %v to %v", sport, want, got)
		}
	}
	// A new connection reusing the 5-tuple of an old one (a SYN) is
	// balanced afresh: the old flow's backend may be gone (issue 20).
	for sport := range first {
		if got := flow(sport); got.Addr() != npB2 {
			t.Fatalf("a new connection on the reused port %d went to %v, not to the current table's %v", sport, got, npB2)
		}
		if got := send(sport, tcpACK); got.Addr() != npB2 {
			t.Fatalf("the new connection on port %d did not stay on %v: %v", sport, npB2, got)
		}
	}
	for sport := uint16(31000); sport < 31050; sport++ {
		if got := flow(sport); got.Addr() != npB2 {
			t.Fatalf("new flow went to %v after the table changed", got)
		}
	}
	// No backend: dropped and counted.
	f.service(1, 3, ipTCP, 8080, 80)
	in := packet{proto: ipTCP, src: netip.AddrPortFrom(npClient, 32000), dst: netip.AddrPortFrom(npNode, 8080)}
	if ret, _ := f.run(f.objs.WarrenNpIngress, in.bytes(), nil); ret != tcxDrop {
		t.Fatalf("no backend: verdict %d, want drop", int32(ret))
	}
	var drops []uint64
	if err := f.objs.NoBackendDrops.Lookup(uint32(1), &drops); err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, d := range drops {
		n += d
	}
	if n != 1 {
		t.Fatalf("drops = %d, want 1", n)
	}
}

// TestNodeportProgRemoteSNAT: a backend outside the node's subnet is
// SNATed to the mesh address and redirected into the mesh; its reply,
// arriving on the mesh interface (here with an Ethernet header, as test
// runs always have), is translated back to
// node:published → client and redirected to the uplink.
func TestNodeportProgRemoteSNAT(t *testing.T) {
	ktest.Root(t)
	f := newNPFixture(t)
	sub := netip.MustParsePrefix("10.98.0.0/24")
	mask := [4]byte{255, 255, 255, 0}
	f.put(f.objs.NpConfig, uint32(0), bpf.NodeportNpConfig{Subnet: u32(sub.Addr()), Mask: binary.NativeEndian.Uint32(mask[:]),
		SnatAddr: u32(npMesh), MeshIfindex: 1, MeshL2: 1, UplinkIfindex: 1, Seed: 7})
	f.backend(3, npRemote)
	f.service(1, 1, ipTCP, 8080, 80, 3)
	client := netip.AddrPortFrom(npClient, 41000)
	in := packet{proto: ipTCP, src: client, dst: netip.AddrPortFrom(npNode, 8080), payload: []byte("x")}
	ret, out := f.run(f.objs.WarrenNpIngress, in.bytes(), nil)
	if ret != tcRedirect {
		t.Fatalf("ingress verdict %d, want redirect", int32(ret))
	}
	got := parsePacket(t, out, 14)
	if got.dst != netip.AddrPortFrom(npRemote, 80) || got.src.Addr() != npMesh || got.src.Port() < snatPortMin {
		t.Fatalf("ingress: %v → %v, want %v:>=%d → %v:80", got.src, got.dst, npMesh, snatPortMin, npRemote)
	}
	snat := got.src
	// A second client flow gets another SNAT port.
	in2 := in
	in2.src = netip.AddrPortFrom(npClient, 41001)
	_, out2 := f.run(f.objs.WarrenNpIngress, in2.bytes(), nil)
	if p := parsePacket(t, out2, 14).src; p == snat {
		t.Fatalf("two flows share SNAT port %v", p)
	}

	reply := packet{proto: ipTCP, src: netip.AddrPortFrom(npRemote, 80), dst: snat, payload: []byte("yy")}
	ret, out = f.run(f.objs.WarrenNpMesh, reply.bytes(), nil)
	// Translated in place and handed back to the kernel, which forwards it
	// to the client (the mesh interface accepts the node's own source).
	if ret != tcxNext {
		t.Fatalf("mesh verdict %d, want TCX_NEXT", int32(ret))
	}
	got = parsePacket(t, out, 14)
	if got.src != netip.AddrPortFrom(npNode, 8080) || got.dst != client {
		t.Fatalf("reply: %v → %v, want %v:8080 → %v", got.src, got.dst, npNode, client)
	}
	// The uplink's egress program leaves the translated reply alone.
	if ret, _ := f.run(f.objs.WarrenNpEgress, out, nil); ret != tcxNext {
		t.Fatalf("egress verdict %d on a translated reply", int32(ret))
	}
}
