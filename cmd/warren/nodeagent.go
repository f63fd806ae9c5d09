package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	cnitypes "github.com/containernetworking/cni/pkg/types"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/warrenhq/warren/cni"
	"github.com/warrenhq/warren/controlplane/agent"
	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/ca"
	"github.com/warrenhq/warren/controlplane/manager"
	"github.com/warrenhq/warren/dataplane"
	"github.com/warrenhq/warren/dataplane/choose"
	"github.com/warrenhq/warren/dataplane/dns"
	"github.com/warrenhq/warren/dataplane/ebpf"
	"github.com/warrenhq/warren/dataplane/mesh"
	"github.com/warrenhq/warren/runtime"
	rtc "github.com/warrenhq/warren/runtime/containerd"
	"github.com/warrenhq/warren/runtime/ociimage"
)

// nodeAgent is everything a node runs for its tasks: the agent (manager
// side), the containerd worker, and the network (CNI, mesh, DNS, dataplane).
type nodeAgent struct {
	log     *zap.Logger
	agent   *agent.Agent
	worker  *runtime.Worker
	exec    *rtc.Executor
	net     *netSink
	renewer *ca.Renewer
	roles   *roleWatcher
	isMgr   bool
	logSrv  *http.Server
	traffic *ebpf.TaskCounters // nil where TCX is unavailable
}

func startAgent(ctx context.Context, g *globals, o *nodeOpts, log *zap.Logger, ident *manager.NodeIdentity, adv, hostname string, reg *prometheus.Registry) (*nodeAgent, error) {
	n := &nodeAgent{log: log.With(zap.String("component", "agent")), isMgr: ident.Role == api.RoleManager}
	mc, certs, verifier, err := managerClient(g.dataDir, ident)
	if err != nil {
		return nil, err
	}
	if !n.isMgr {
		n.renewer = &ca.Renewer{
			Store: certs, Dir: filepath.Join(g.dataDir, manager.CertsDir), Clock: ca.SystemClock{}, Rand: rand.Reader,
			Log: log.With(zap.String("component", "cert-renewal")),
			Renew: func(ctx context.Context, csrPEM []byte) ([]byte, error) {
				r, err := mc.RenewCert(ctx, string(csrPEM))
				if err != nil {
					return nil, err
				}
				return []byte(r.CertPEM), nil
			},
		}
	}

	subnet, err := netip.ParsePrefix(ident.Network.Subnet)
	if err != nil {
		return nil, fmt.Errorf("this node has no pod subnet (%q): %w", ident.Network.Subnet, err)
	}
	gateway := subnet.Addr().Next()

	// CNI: the plugin is this binary under the name warren-cni, with a
	// conflist per node so several nodes on one machine stay apart.
	cniBin := filepath.Join(g.dataDir, "cni", "bin")
	cniConf := filepath.Join(g.dataDir, "cni", "net.d")
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if err := cni.InstallPlugin(cniBin, self); err != nil {
		return nil, err
	}
	netConf := cni.NetConf{
		Name: "warren", Bridge: o.bridge, Subnet: subnet.String(),
		PodCIDR: ident.Network.PodCIDR, ServiceCIDR: ident.Network.ServiceCIDR,
		DataDir: filepath.Join(g.dataDir, "cni", "ipam"),
		DNS:     cniDNS(gateway, ident.Network.Domain),
	}
	if err := cni.WriteConfList(cniConf, netConf); err != nil {
		return nil, err
	}
	if err := cni.PrepareNode(netConf); err != nil {
		return nil, fmt.Errorf("node network: %w", err)
	}
	// Tasks resolve service names through this node's DNS server.
	resolv := filepath.Join(g.dataDir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte(resolvConf(gateway, ident.Network.Domain)), 0o644); err != nil {
		return nil, err
	}
	cniClient := cni.NewClient(cniBin, cniConf)

	exec, err := rtc.New(rtc.Options{
		Address: o.containerdSock, Namespace: o.containerdNS, CgroupParent: o.cgroupParent,
		NodeID: ident.NodeID, Network: cniNetwork{cniClient},
		ImageFetcher: func(ctx context.Context, ref string) (io.ReadCloser, error) {
			// Managers keep images under their fully qualified names.
			return mc.DownloadImage(ctx, ociimage.NormalizeRef(ref))
		},
		VolumeDir:    filepath.Join(g.dataDir, "volumes"),
		DisablePull:  !o.registryPull,
		LoggerBinary: self,
		ResolvConf:   resolv,
		Logger:       log.With(zap.String("component", "runtime")),
	})
	if err != nil {
		return nil, fmt.Errorf("containerd at %s: %w", o.containerdSock, err)
	}
	n.exec = exec

	var ag *agent.Agent
	var agMu sync.Mutex
	worker, err := runtime.NewWorker(runtime.WorkerOptions{
		Executor: exec, DataDir: g.dataDir, Logger: log.With(zap.String("component", "worker")), Clock: time.Now,
		Reporter: func(taskID string, st api.TaskStatus) {
			agMu.Lock()
			a := ag
			agMu.Unlock()
			if a != nil {
				a.Report(taskID, st)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	n.worker = worker
	reg.MustRegister(worker.Collector())

	// The node's cgroup must exist before the dataplane attaches to it.
	if p := exec.CgroupV2Path(); p != "" {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return nil, fmt.Errorf("node cgroup %s: %w", p, err)
		}
	}
	sink, err := newNetSink(log, g.dataDir, ident, o, gateway, exec.CgroupV2Path())
	if err != nil {
		return nil, err
	}
	n.net = sink
	if c := sink.collector(); c != nil {
		reg.MustRegister(c)
	}

	if tc, err := ebpf.NewTaskCounters(filepath.Join("/sys/fs/bpf/warren", ident.NodeID, "tasks")); err != nil {
		n.log.Info("per-task network counters unavailable", zap.Error(err))
	} else {
		n.traffic = tc
		reg.MustRegister(tc)
	}

	logSrv, err := serveNodeLogs(o.agentAddr, verifier, certs, worker, log)
	if err != nil {
		return nil, fmt.Errorf("node listener %s: %w", o.agentAddr, err)
	}
	n.logSrv = logSrv
	_, agentPort, _ := net.SplitHostPort(o.agentAddr)
	sink.agentAddr = net.JoinHostPort(ident.Addr, agentPort)

	labels, err := parseKV("--label", o.labels)
	if err != nil {
		return nil, err
	}
	a, err := agent.New(agent.Config{
		NodeID: ident.NodeID, DataDir: g.dataDir, Manager: mc, Managers: ident.Managers,
		Executor: worker, Network: sink,
		Registration: registration(ident, hostname, labels, sink.nodeNetwork),
		Logger:       n.log,
	})
	if err != nil {
		return nil, err
	}
	agMu.Lock()
	ag = a
	agMu.Unlock()
	n.agent = a
	n.roles = &roleWatcher{log: n.log, dataDir: g.dataDir, ident: ident, agent: a, mc: mc, apiAddr: apiAddrFor(ident, o.listenAddr)}
	return n, nil
}

// Run runs the agent, the worker's housekeeping and certificate renewal.
func (n *nodeAgent) Run(ctx context.Context) error {
	go func() {
		if err := n.worker.Run(ctx); err != nil && ctx.Err() == nil {
			n.log.Error("worker stopped", zap.Error(err))
		}
	}()
	if n.renewer != nil {
		go func() { _ = n.renewer.Run(ctx) }()
	}
	go n.roles.run(ctx)
	if n.traffic != nil {
		go n.countTraffic(ctx)
	}
	return n.agent.Run(ctx)
}

// Close stops the agent side. Containers keep running: the next start adopts them.
func (n *nodeAgent) Close() {
	n.logSrv.Close()
	if n.traffic != nil {
		n.traffic.Close()
	}
	n.worker.Close()
	n.agent.Close()
	n.net.Close()
	n.exec.Close()
}

func cniDNS(gateway netip.Addr, domain string) (d cnitypes.DNS) {
	d.Nameservers = []string{gateway.String()}
	if domain != "" {
		d.Search = []string{domain}
	}
	return d
}

// hostCapacity is what the scheduler may hand out on this node.
func hostCapacity() api.Resources {
	r := api.Resources{NanoCPUs: int64(goruntime.NumCPU()) * 1e9}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				r.MemoryBytes = kb << 10
			}
		}
	}
	return r
}

// netSink turns assignments into the node's network: WireGuard peers and
// routes, the service table in the dataplane, and DNS records.
type netSink struct {
	log     *zap.Logger
	o       *nodeOpts
	ident   *manager.NodeIdentity
	gateway netip.Addr
	mesh    mesh.Mesh
	dp      dataplane.Dataplane
	dns     *dns.Server

	agentAddr string

	mu         sync.Mutex
	dnsStarted bool
}

func newNetSink(log *zap.Logger, dataDir string, ident *manager.NodeIdentity, o *nodeOpts, gateway netip.Addr, cgroup string) (*netSink, error) {
	s := &netSink{log: log.With(zap.String("component", "network")), o: o, ident: ident, gateway: gateway}
	m, err := mesh.New(mesh.Options{Mode: o.wireguard, IfName: o.wgIface, KeyFile: filepath.Join(dataDir, "wireguard.key"), Logger: s.log, Persist: true})
	if err != nil {
		return nil, fmt.Errorf("wireguard mesh: %w", err)
	}
	s.mesh = m
	if err := ensureBPFFS(); err != nil {
		s.log.Warn("bpffs", zap.Error(err))
	}
	nodeAddr, _ := netip.ParseAddr(ident.Addr)
	subnet, _ := netip.ParsePrefix(ident.Network.Subnet)
	uplink := o.uplink
	if uplink == "" {
		uplink = interfaceWith(nodeAddr)
	}
	opts := choose.Options{
		Mode: o.dataplane, CgroupPath: cgroup, AttachHostRoot: o.hostLB,
		PinDir: filepath.Join("/sys/fs/bpf/warren", ident.NodeID), ProxyInterface: "warren-vip",
		Logger: s.log,
	}
	if uplink != "" && uplink != "lo" && o.routingMesh {
		// Published ports answer other hosts on the uplink (the routing
		// mesh); remote backends are reached through WireGuard.
		opts.NodeportInterface, opts.NodeAddrs = uplink, []netip.Addr{nodeAddr}
		opts.NodeSubnet, opts.MeshInterface, opts.MeshAddr = subnet, o.wgIface, gateway
	}
	dp, err := choose.New(opts)
	if err != nil {
		return nil, fmt.Errorf("dataplane: %w", err)
	}
	s.dp = dp
	d, err := dns.New(dns.Options{ListenAddr: net.JoinHostPort(gateway.String(), "53"), Domain: ident.Network.Domain, Logger: s.log})
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	s.dns = d
	return s, nil
}

func (s *netSink) collector() prometheus.Collector { return dataplane.NewCollector(s.dp) }

func (s *netSink) nodeNetwork() api.NodeNetwork {
	return api.NodeNetwork{
		Subnet:      s.ident.Network.Subnet,
		WGPublicKey: s.mesh.PublicKey(),
		WGEndpoint:  net.JoinHostPort(s.ident.Addr, strconv.Itoa(int(s.o.wgPort))),
		DNSAddr:     s.gateway.String(),
		AgentAddr:   s.agentAddr,
	}
}

// SetNetwork applies one set of assignments; each part is declarative, so
// a failure in one is retried with the next assignments without undoing the
// others.
func (s *netSink) SetNetwork(ctx context.Context, a *api.Assignments) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []string
	if err := s.mesh.Set(meshConfig(a, s.gateway, s.o.wgPort)); err != nil {
		errs = append(errs, "mesh: "+err.Error())
	}
	// Set is declarative and diffs against the kernel's maps itself.
	if err := s.dp.Set(dataplaneConfig(a)); err != nil {
		errs = append(errs, "dataplane: "+err.Error())
	}
	if err := s.dns.Set(dnsConfig(a)); err != nil {
		errs = append(errs, "dns: "+err.Error())
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

func (s *netSink) Close() {
	s.dns.Close()
	s.dp.Close()
	s.mesh.Close()
}

// meshConfig peers with every other node that has a key and a subnet.
func meshConfig(a *api.Assignments, gateway netip.Addr, port uint16) *mesh.Config {
	c := &mesh.Config{ListenPort: port, Address: netip.PrefixFrom(gateway, 32)}
	for _, p := range a.Peers {
		if p.NodeID == a.NodeID || p.WGPublicKey == "" {
			continue
		}
		ep, err := netip.ParseAddrPort(p.WGEndpoint)
		if err != nil {
			continue
		}
		sub, err := netip.ParsePrefix(p.Subnet)
		if err != nil {
			continue
		}
		c.Peers = append(c.Peers, mesh.Peer{PublicKey: p.WGPublicKey, Endpoint: ep, AllowedIPs: []netip.Prefix{sub}})
	}
	return c
}

// dataplaneConfig is the pure conversion from the control plane's service
// table to the dataplane's.
func dataplaneConfig(a *api.Assignments) *dataplane.Config {
	c := &dataplane.Config{}
	for _, s := range a.Services {
		vip, err := netip.ParseAddr(s.VIP)
		if err != nil {
			continue
		}
		svc := dataplane.Service{ID: s.ServiceID, Name: s.Name, VIP: vip}
		for _, p := range s.Ports {
			proto := dataplane.TCP
			if p.Protocol == api.UDP {
				proto = dataplane.UDP
			}
			svc.Ports = append(svc.Ports, dataplane.Port{Proto: proto, Port: p.TargetPort, TargetPort: p.TargetPort, Published: p.PublishedPort})
		}
		for _, g := range s.Groups {
			grp := dataplane.Group{Version: g.Version, Weight: g.Weight}
			for _, b := range g.Backends {
				addr, err := netip.ParseAddr(b.Addr)
				if err != nil {
					continue
				}
				h := dataplane.Active
				switch b.Health {
				case api.BackendTerminating:
					h = dataplane.Terminating
				case api.BackendUnhealthy:
					h = dataplane.Unhealthy
				}
				grp.Backends = append(grp.Backends, dataplane.Backend{ID: b.TaskID, Addr: addr, Health: h})
			}
			svc.Groups = append(svc.Groups, grp)
		}
		c.Services = append(c.Services, svc)
	}
	return c
}

// dnsConfig maps names to VIPs and to the addresses of healthy tasks.
func dnsConfig(a *api.Assignments) *dns.Config {
	c := &dns.Config{Services: map[string]netip.Addr{}, Tasks: map[string][]netip.Addr{}}
	for _, s := range a.Services {
		if vip, err := netip.ParseAddr(s.VIP); err == nil {
			c.Services[s.Name] = vip
		}
		for _, g := range s.Groups {
			for _, b := range g.Backends {
				if b.Health != api.BackendActive {
					continue
				}
				if addr, err := netip.ParseAddr(b.Addr); err == nil {
					c.Tasks[s.Name] = append(c.Tasks[s.Name], addr)
				}
			}
		}
	}
	return c
}

// cniNetwork adapts the CNI client to the runtime's Network hook.
type cniNetwork struct{ c *cni.Client }

func (n cniNetwork) Attach(ctx context.Context, containerID, netnsPath string) (netip.Addr, error) {
	return n.c.Add(ctx, containerID, netnsPath)
}

func (n cniNetwork) Detach(ctx context.Context, containerID, netnsPath string) error {
	return n.c.Del(ctx, containerID, netnsPath)
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

func resolvConf(gateway netip.Addr, domain string) string {
	s := "nameserver " + gateway.String() + "\n"
	if domain != "" {
		s += "search " + domain + "\n"
	}
	return s + "options ndots:1\n"
}

// countTraffic keeps a TCX counter pair on the host end of every running
// task's veth (its name is derived from the container ID, as the CNI plugin
// derives it).
func (n *nodeAgent) countTraffic(ctx context.Context) {
	t := time.NewTicker(3 * time.Second)
	defer t.Stop()
	reported := ""
	for {
		want := map[string]string{}
		for id, st := range n.worker.Tasks() {
			if st.State == api.TaskRunning && st.ContainerID != "" {
				want[id] = cni.HostVethName(st.ContainerID, "eth0")
			}
		}
		if err := n.traffic.Set(want); err != nil && err.Error() != reported {
			n.log.Debug("task counters", zap.Error(err))
			reported = err.Error()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
