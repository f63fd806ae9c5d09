package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"

	"github.com/warrenhq/warren/dataplane/proxy"
)

// proxyDataplane drives the userspace proxy with the same slot tables the
// eBPF implementation writes to maps. Unlike eBPF it cannot keep serving
// while the agent is down: its sockets die with the process, and the agent's
// first Set after start brings them back.
type proxyDataplane struct {
	p     *proxy.Proxy
	iface string
}

func newProxy(opts Options) (Dataplane, error) {
	return &proxyDataplane{p: proxy.New(), iface: opts.ProxyInterface}, nil
}

func (d *proxyDataplane) Set(cfg *Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	var fronts []proxy.Frontend
	var vips []netip.Addr
	for _, s := range cfg.Services {
		table := SlotTable(s.Groups)
		if len(s.Ports) > 0 && !s.VIP.IsLoopback() {
			vips = append(vips, s.VIP)
		}
		for _, p := range s.Ports {
			slots := make([]proxy.Target, len(table))
			for i, b := range table {
				slots[i] = proxy.Target{ID: b.ID, Addr: netip.AddrPortFrom(b.Addr, p.TargetPort)}
			}
			network := "tcp"
			if p.Proto == UDP {
				network = "udp"
			}
			fronts = append(fronts, proxy.Frontend{Network: network, Listen: netip.AddrPortFrom(s.VIP, p.Port), Service: s.Name, Slots: slots})
			if p.Published != 0 {
				fronts = append(fronts, proxy.Frontend{Network: network, Listen: netip.AddrPortFrom(netip.IPv4Unspecified(), p.Published), Service: s.Name, Slots: slots})
			}
		}
	}
	if d.iface != "" {
		if err := proxy.EnsureAddrs(d.iface, vips); err != nil {
			return fmt.Errorf("proxy vips: %w", err)
		}
	} else if len(vips) > 0 {
		return errors.New("proxy: ProxyInterface is required for non-loopback VIPs")
	}
	return d.p.Set(fronts)
}

func (d *proxyDataplane) Close() error { return d.p.Close() }

// Counters implements CounterSource from the proxy's own counts.
func (d *proxyDataplane) Counters() ([]ServiceCounters, error) {
	st := d.p.Stats()
	var out []ServiceCounters
	for name, s := range st {
		out = append(out, ServiceCounters{Service: name, Connections: s.Connections, Drops: s.Drops, Backends: s.Backends})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out, nil
}
