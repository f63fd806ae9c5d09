package proxy

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"

	"github.com/warrenhq/warren/dataplane"
)

// Dataplane is the proxy implementation of dataplane.Dataplane: it drives
// the forwarding engine with the same slot tables the eBPF implementation
// writes to maps. Unlike eBPF it cannot keep serving while the agent is
// down: its sockets die with the process, and the agent's first Set after
// start brings them back.
type Dataplane struct {
	p     *Proxy
	iface string
}

// NewDataplane returns a proxy dataplane that puts non-loopback VIPs on the
// dummy interface iface (created if missing). With an empty iface only
// loopback VIPs can be served.
func NewDataplane(iface string) *Dataplane {
	return &Dataplane{p: New(), iface: iface}
}

// Set makes the proxy serve exactly cfg; nil serves nothing.
func (d *Dataplane) Set(cfg *dataplane.Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg == nil {
		cfg = &dataplane.Config{}
	}
	var fronts []Frontend
	var vips []netip.Addr
	for _, s := range cfg.Services {
		table := dataplane.SlotTable(s.Groups)
		if len(s.Ports) > 0 && !s.VIP.IsLoopback() {
			vips = append(vips, s.VIP)
		}
		for _, p := range s.Ports {
			slots := make([]Target, len(table))
			for i, b := range table {
				slots[i] = Target{ID: b.ID, Addr: netip.AddrPortFrom(b.Addr, p.TargetPort)}
			}
			network := "tcp"
			if p.Proto == dataplane.UDP {
				network = "udp"
			}
			fronts = append(fronts, Frontend{Network: network, Listen: netip.AddrPortFrom(s.VIP, p.Port), Service: s.Name, Slots: slots})
			if p.Published != 0 {
				fronts = append(fronts, Frontend{Network: network, Listen: netip.AddrPortFrom(netip.IPv4Unspecified(), p.Published), Service: s.Name, Slots: slots})
			}
		}
	}
	if d.iface != "" {
		if err := EnsureAddrs(d.iface, vips); err != nil {
			return fmt.Errorf("proxy vips: %w", err)
		}
	} else if len(vips) > 0 {
		return errors.New("proxy: ProxyInterface is required for non-loopback VIPs")
	}
	return d.p.Set(fronts)
}

// Close stops every listener; see Proxy.Close.
func (d *Dataplane) Close() error { return d.p.Close() }

// Counters implements dataplane.CounterSource from the proxy's own counts.
func (d *Dataplane) Counters() ([]dataplane.ServiceCounters, error) {
	st := d.p.Stats()
	var out []dataplane.ServiceCounters
	for name, s := range st {
		c := dataplane.ServiceCounters{Service: name, Connections: s.Connections, Drops: s.Drops, Backends: s.Backends}
		for id, e := range s.Errors {
			if c.Errors == nil {
				c.Errors = map[string]dataplane.BackendErrors{}
			}
			c.Errors[id] = dataplane.BackendErrors{ConnectFailures: e.ConnectFailures, Resets: e.Resets}
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out, nil
}
