package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Dataplane balances connections to service VIPs and published ports.
//
// Set takes the complete desired table for the node; it is declarative and
// idempotent: calling it twice with an equal Config changes nothing. A nil
// Config is the empty table: every service is removed. Close
// stops managing the node but, for the eBPF implementation, leaves pinned
// maps and links in place so traffic keeps flowing across an agent restart.
type Dataplane interface {
	Set(*Config) error
	Close() error
}

// ErrNotSupported is wrapped by every error that says the host lacks what an
// implementation needs (no BTF, no cgroup v2, not Linux, old kernel).
var ErrNotSupported = errors.New("dataplane: not supported")

// NotSupportedError says which requirement is missing.
type NotSupportedError struct {
	What string
	Err  error
}

func (e *NotSupportedError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("dataplane: %s not supported: %v", e.What, e.Err)
	}
	return fmt.Sprintf("dataplane: %s not supported", e.What)
}

func (e *NotSupportedError) Unwrap() []error { return []error{ErrNotSupported, e.Err} }

// Config is the complete desired service table of a node.
type Config struct {
	Services []Service
}

// Service is one load-balanced service.
type Service struct {
	ID, Name string
	VIP      netip.Addr
	Ports    []Port
	Groups   []Group
}

// Port is one VIP:port/protocol frontend of a service.
type Port struct {
	Proto      Protocol
	Port       uint16 // port on the VIP
	TargetPort uint16 // backend port
	Published  uint16 // 0 = not published on the host
}

// Protocol is a transport protocol.
type Protocol uint8

const (
	TCP Protocol = 6
	UDP Protocol = 17
)

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return fmt.Sprintf("proto(%d)", uint8(p))
}

// Group is one version of a service's backends with its traffic weight.
type Group struct {
	Version  string
	Weight   uint32
	Backends []Backend
}

// Backend is one task serving a service.
type Backend struct {
	ID     string // task id
	Addr   netip.Addr
	Health Health
}

// Health says whether a backend may receive new connections.
type Health uint8

const (
	Active Health = iota
	Terminating
	Unhealthy
)

func (h Health) String() string {
	switch h {
	case Active:
		return "active"
	case Terminating:
		return "terminating"
	case Unhealthy:
		return "unhealthy"
	}
	return fmt.Sprintf("health(%d)", uint8(h))
}

// Equal reports whether two configs describe the same table. Order matters:
// the agent builds configs deterministically, and a reordering is cheap to
// re-apply because Set diffs.
func (c *Config) Equal(o *Config) bool {
	if c == nil || o == nil {
		return c == o
	}
	return slices.EqualFunc(c.Services, o.Services, func(a, b Service) bool {
		return a.ID == b.ID && a.Name == b.Name && a.VIP == b.VIP &&
			slices.Equal(a.Ports, b.Ports) &&
			slices.EqualFunc(a.Groups, b.Groups, func(x, y Group) bool {
				return x.Version == y.Version && x.Weight == y.Weight && slices.Equal(x.Backends, y.Backends)
			})
	})
}

// Validate rejects configs no implementation can apply: duplicate service
// ids, duplicate frontends, non-IPv4 addresses (IPv6 is not implemented yet),
// unknown protocols and zero ports. A nil Config is valid: it is empty.
func (c *Config) Validate() error {
	if c == nil {
		return nil
	}
	ids := map[string]bool{}
	type fe struct {
		addr  netip.Addr
		port  uint16
		proto Protocol
	}
	fes := map[fe]string{}
	for _, s := range c.Services {
		if s.ID == "" {
			return fmt.Errorf("service %q: empty id", s.Name)
		}
		if ids[s.ID] {
			return fmt.Errorf("service %s: duplicate id", s.ID)
		}
		ids[s.ID] = true
		if !s.VIP.Is4() {
			return fmt.Errorf("service %s: vip %v is not IPv4", s.ID, s.VIP)
		}
		for _, p := range s.Ports {
			if p.Proto != TCP && p.Proto != UDP {
				return fmt.Errorf("service %s: %v", s.ID, p.Proto)
			}
			if p.Port == 0 || p.TargetPort == 0 {
				return fmt.Errorf("service %s: zero port", s.ID)
			}
			keys := []fe{{s.VIP, p.Port, p.Proto}}
			if p.Published != 0 {
				keys = append(keys, fe{netip.IPv4Unspecified(), p.Published, p.Proto})
			}
			for _, k := range keys {
				if other, dup := fes[k]; dup {
					return fmt.Errorf("service %s: %v:%d/%v already used by %s", s.ID, k.addr, k.port, k.proto, other)
				}
				fes[k] = s.ID
			}
		}
		for _, g := range s.Groups {
			for _, b := range g.Backends {
				if !b.Addr.Is4() {
					return fmt.Errorf("service %s backend %s: address %v is not IPv4", s.ID, b.ID, b.Addr)
				}
			}
		}
	}
	return nil
}
