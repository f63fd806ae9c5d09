package nodenet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/dataplane"
	"github.com/warrenhq/warren/dataplane/choose"
	"github.com/warrenhq/warren/dataplane/dns"
	"github.com/warrenhq/warren/dataplane/mesh"
	"github.com/warrenhq/warren/dataplane/nodedevice"
)

// SinkOptions describe this node and how its network is built.
type SinkOptions struct {
	NodeID  string
	Addr    string // the node's address on the underlay
	Network api.ClusterNetwork
	DataDir string
	Cgroup  string // cgroup v2 directory of the node's containers

	WireGuard string // mesh mode: kernel, userspace or auto
	WGIface   string
	WGPort    uint16

	Dataplane   string // ebpf, proxy or auto
	HostLB      bool   // host processes reach VIPs too
	Uplink      string // empty: the interface holding Addr
	RoutingMesh bool   // published ports answer other hosts

	Logger *zap.Logger
}

// PinDir is where this node's BPF objects are pinned; nodes sharing a
// machine need distinct directories.
func PinDir(nodeID string) string { return filepath.Join("/sys/fs/bpf/warren", nodeID) }

// dataplaneOptions decides how the dataplane attaches. uplink is the
// interface that carries the node's address, already resolved.
func dataplaneOptions(o SinkOptions, uplink string, gateway netip.Addr) choose.Options {
	nodeAddr, _ := netip.ParseAddr(o.Addr)
	subnet, _ := netip.ParsePrefix(o.Network.Subnet)
	opts := choose.Options{
		Mode: o.Dataplane, CgroupPath: o.Cgroup, AttachHostRoot: o.HostLB,
		PinDir: PinDir(o.NodeID), ProxyInterface: ProxyInterface,
	}
	if uplink != "" && uplink != "lo" && o.RoutingMesh {
		// Published ports answer other hosts on the uplink (the routing
		// mesh); remote backends are reached through WireGuard.
		opts.NodeportInterface, opts.NodeAddrs = uplink, []netip.Addr{nodeAddr}
		opts.NodeSubnet, opts.MeshInterface, opts.MeshAddr = subnet, o.WGIface, gateway
	}
	return opts
}

// Sink turns assignments into the node's network: WireGuard peers and
// routes, the service table in the dataplane, and DNS records.
type Sink struct {
	log     *zap.Logger
	o       SinkOptions
	gateway netip.Addr
	mesh    mesh.Mesh
	dp      dataplane.Dataplane
	dns     dnsServer
	probe   *Prober

	mu         sync.Mutex // serialises SetNetwork
	dnsStarted bool
	table      uint64 // assignments index whose service table and DNS are applied

	// addrMu is apart from mu so that a heartbeat's NodeNetwork never waits
	// for a SetNetwork busy with the kernel.
	addrMu    sync.Mutex
	agentAddr string
}

// NewSink creates the mesh interface, the dataplane and the DNS server; none
// is configured until the first SetNetwork.
func NewSink(o SinkOptions) (*Sink, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	gateway, err := Gateway(o.Network)
	if err != nil {
		return nil, err
	}
	s := &Sink{log: o.Logger.With(zap.String("component", "network")), o: o, gateway: gateway, probe: NewProber(ProberOptions{})}
	// One device process serves the node's DNS and its userspace WireGuard
	// device, so the DNS device is known before the mesh asks for one.
	devices := nodedevice.New(s.log)
	d, err := newDNS(o, devices, net.JoinHostPort(gateway.String(), "53"), s.log)
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	s.dns = d
	m, err := mesh.New(mesh.Options{Mode: o.WireGuard, IfName: o.WGIface, KeyFile: filepath.Join(o.DataDir, "wireguard.key"), Logger: s.log,
		Persist: true, StartDevice: devices.StartWireGuard})
	if err != nil {
		return nil, fmt.Errorf("wireguard mesh: %w", err)
	}
	s.mesh = m
	uplink := o.Uplink
	if uplink == "" {
		nodeAddr, _ := netip.ParseAddr(o.Addr)
		uplink = interfaceWith(nodeAddr)
	}
	opts := dataplaneOptions(o, uplink, gateway)
	opts.Logger = s.log
	dp, err := newDataplane(opts)
	if err != nil {
		return nil, fmt.Errorf("dataplane: %w", err)
	}
	s.dp = dp
	return s, nil
}

// dnsServer is the in-process dns.Server or the dns.Device serving from a
// process of its own.
type dnsServer interface {
	Set(*dns.Config) error
	Start() error
	Close() error
}

// DNSDir is where the node's DNS device keeps its table and control
// socket.
func DNSDir(dataDir string) string { return filepath.Join(dataDir, "dns") }

// newDNS serves the node's names from a device process, so that a daemon
// restart or upgrade never leaves a task's lookup unanswered; in process
// where the device cannot run (no data dir, not Linux).
func newDNS(o SinkOptions, devices *nodedevice.Node, listen string, log *zap.Logger) (dnsServer, error) {
	if o.DataDir != "" {
		d, err := devices.OpenDNS(dns.DeviceOptions{Dir: DNSDir(o.DataDir), ListenAddr: listen, Domain: o.Network.Domain})
		if err == nil {
			return d, nil
		}
		if !errors.Is(err, dns.ErrDeviceUnsupported) {
			return nil, err
		}
		log.Info("dns served in process, stops with it", zap.Error(err))
	}
	return dns.New(dns.Options{ListenAddr: listen, Domain: o.Network.Domain, Logger: log})
}

// Collector exports the dataplane's per-service counters.
func (s *Sink) Collector() prometheus.Collector { return newCollector(s.dp) }

// SetAgentAddr records the address this node's agent listener answers on,
// which the node registers with the managers.
func (s *Sink) SetAgentAddr(addr string) {
	s.addrMu.Lock()
	defer s.addrMu.Unlock()
	s.agentAddr = addr
}

// NodeNetwork is what the managers need to know of this node's network.
func (s *Sink) NodeNetwork() api.NodeNetwork {
	s.addrMu.Lock()
	defer s.addrMu.Unlock()
	return api.NodeNetwork{
		Subnet:      s.o.Network.Subnet,
		WGPublicKey: s.mesh.PublicKey(),
		WGEndpoint:  net.JoinHostPort(s.o.Addr, strconv.Itoa(int(s.o.WGPort))),
		DNSAddr:     s.gateway.String(),
		AgentAddr:   s.agentAddr,
	}
}

// SetNetwork applies one set of assignments; each part is declarative, so
// a failure in one is retried with the next assignments without undoing the
// others.
func (s *Sink) SetNetwork(ctx context.Context, a *api.Assignments) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []string
	s.probe.SetPeers(a)
	if err := s.mesh.Set(MeshConfig(a, s.gateway, s.o.WGPort)); err != nil {
		errs = append(errs, "mesh: "+err.Error())
	}
	// Set is declarative and diffs against the kernel's maps itself.
	tableErr := s.dp.Set(DataplaneConfig(a))
	if tableErr != nil {
		errs = append(errs, "dataplane: "+tableErr.Error())
	}
	dnsErr := s.dns.Set(DNSConfig(a))
	if dnsErr != nil {
		errs = append(errs, "dns: "+dnsErr.Error())
	}
	if tableErr == nil && dnsErr == nil {
		// What the managers wait for before stopping a task: a mesh error
		// does not put the task back in this node's table.
		s.table = a.Index
	}
	if !s.dnsStarted {
		// The gateway address appears with the bridge, when the first
		// container of this node is attached; until then DNS waits.
		if err := s.dns.Start(); err == nil {
			s.dnsStarted = true
		} else {
			s.log.Debug("dns not started yet", zap.Error(err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("network: %s", strings.Join(errs, "; "))
	}
	return nil
}

// TableIndex is the index of the last assignments whose service table and
// DNS records were applied in full, 0 before the first; the agent reports
// it to the managers (api.Drain).
func (s *Sink) TableIndex() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.table
}

// PeerHealth is how the mesh peers answer this node's probes (probe.go).
func (s *Sink) PeerHealth() map[string]PeerHealth { return s.probe.Health() }

// RunProbes probes the mesh peers until ctx ends.
func (s *Sink) RunProbes(ctx context.Context) { s.probe.Run(ctx) }

// Close stops the in-process DNS server (a device keeps serving), the
// dataplane and the mesh.
func (s *Sink) Close() {
	s.dns.Close()
	s.dp.Close()
	s.mesh.Close()
}

// interfaceWith names the interface that holds addr, or "".
func interfaceWith(addr netip.Addr) string {
	ifs, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, ifc := range ifs {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP); ok && ip.Unmap() == addr {
					return ifc.Name
				}
			}
		}
	}
	return ""
}
