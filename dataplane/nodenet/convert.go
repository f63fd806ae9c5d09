package nodenet

import (
	"net/netip"

	"github.com/warrenhq/warren/cni"
	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/dataplane"
	"github.com/warrenhq/warren/dataplane/dns"
	"github.com/warrenhq/warren/dataplane/mesh"
)

// MeshConfig peers with every other node that has a key and a subnet.
// Peers whose endpoint or subnet does not parse are left out rather than
// failing the whole mesh: the next assignments may carry them complete.
func MeshConfig(a *api.Assignments, gateway netip.Addr, port uint16) *mesh.Config {
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

// DataplaneConfig is the control plane's service table in the dataplane's
// terms. A service without a valid VIP, or a backend without a valid
// address, is skipped: the dataplane cannot route to it anyway.
func DataplaneConfig(a *api.Assignments) *dataplane.Config {
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

// DNSConfig maps names to VIPs and to the addresses of active tasks; a
// draining or unhealthy task must not be handed out by tasks.NAME. A
// stack's Compose names map to its services for the stack's own tasks.
func DNSConfig(a *api.Assignments) *dns.Config {
	c := &dns.Config{Services: map[string]netip.Addr{}, Tasks: map[string][]netip.Addr{},
		Scopes: map[netip.Addr]string{}, Aliases: map[string]map[string]string{}}
	for _, s := range a.Services {
		if vip, err := netip.ParseAddr(s.VIP); err == nil {
			c.Services[s.Name] = vip
		}
		if s.Scope != "" {
			if c.Aliases[s.Scope] == nil {
				c.Aliases[s.Scope] = map[string]string{}
			}
			for _, alias := range s.Aliases {
				c.Aliases[s.Scope][alias] = s.Name
			}
		}
		for _, g := range s.Groups {
			for _, b := range g.Backends {
				// Any task with an address, starting ones too: nginx looks
				// its upstreams up as it starts.
				if addr, err := netip.ParseAddr(b.Addr); err == nil && s.Scope != "" {
					c.Scopes[addr] = s.Scope
				}
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

// TaskVeths names the host end of every running task's veth, keyed by task
// ID. The name is derived from the container ID as the CNI plugin derives
// it, so no lookup in the kernel is needed.
func TaskVeths(tasks map[string]api.TaskStatus) map[string]string {
	want := map[string]string{}
	for id, st := range tasks {
		if st.State == api.TaskRunning && st.ContainerID != "" {
			want[id] = cni.HostVethName(st.ContainerID, "eth0")
		}
	}
	return want
}
