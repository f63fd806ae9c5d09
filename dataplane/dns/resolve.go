package dns

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	mdns "github.com/miekg/dns"
)

// Config is the complete name table of the node.
type Config struct {
	Services map[string]netip.Addr   // service name -> VIP
	Tasks    map[string][]netip.Addr // service name -> healthy task addresses
	// Scopes name, by client address, the scope (stack) a querying task
	// belongs to; Aliases, by scope, the service each short name means
	// there (Compose service names). A client outside a scope sees none.
	Scopes  map[netip.Addr]string
	Aliases map[string]map[string]string // scope -> alias -> service name
}

// TTLs: a VIP lives as long as its service; task sets change with every
// deployment and health flap, so resolvers must come back soon.
const (
	serviceTTL = 30
	tasksTTL   = 5
	negTTL     = 5
)

// table is an immutable, normalised Config.
type table struct {
	services map[string]netip.Addr
	tasks    map[string][]netip.Addr
	scopes   map[netip.Addr]string
	aliases  map[string]map[string]string
}

func normName(s string) string { return strings.ToLower(strings.TrimSuffix(s, ".")) }

func newTable(c *Config) (*table, error) {
	t := &table{services: map[string]netip.Addr{}, tasks: map[string][]netip.Addr{}, scopes: c.scopesOrNil(), aliases: map[string]map[string]string{}}
	if c == nil {
		return t, nil
	}
	for scope, names := range c.Aliases {
		m := map[string]string{}
		for alias, svc := range names {
			a, n := normName(alias), normName(svc)
			if !validName(a) || strings.HasPrefix(a, "tasks.") || !validName(n) {
				return nil, fmt.Errorf("dns: scope %s: invalid alias %q for %q", scope, alias, svc)
			}
			m[a] = n
		}
		t.aliases[scope] = m
	}
	for name, vip := range c.Services {
		n := normName(name)
		if !validName(n) || strings.HasPrefix(n, "tasks.") {
			return nil, fmt.Errorf("dns: invalid service name %q", name)
		}
		if !vip.Is4() {
			return nil, fmt.Errorf("dns: service %s: VIP %s is not IPv4", name, vip)
		}
		t.services[n] = vip
	}
	for name, addrs := range c.Tasks {
		n := normName(name)
		if !validName(n) {
			return nil, fmt.Errorf("dns: invalid service name %q", name)
		}
		out := make([]netip.Addr, 0, len(addrs))
		for _, a := range addrs {
			if !a.Is4() {
				return nil, fmt.Errorf("dns: tasks of %s: %s is not IPv4", name, a)
			}
			out = append(out, a)
		}
		slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
		t.tasks[n] = slices.Compact(out)
	}
	return t, nil
}

func (c *Config) scopesOrNil() map[netip.Addr]string {
	if c == nil {
		return nil
	}
	return c.Scopes
}

// verdict is what to do with a question.
type verdict int

const (
	forward  verdict = iota // not ours: ask upstream
	answer                  // ours: records (possibly none: NODATA)
	nxdomain                // inside our domain but unknown
)

// resolve decides a question against the table. Names inside the domain are
// authoritative; bare names (NAME, tasks.NAME) are answered when known and
// forwarded otherwise, since a container's search list may not include the
// domain and the name may be a real host.
// A client inside a scope resolves the scope's aliases first, so a stack's
// own "db" wins over a service named db elsewhere, as on a Compose network.
func (t *table) resolve(domain, qname string, client netip.Addr) (verdict, []netip.Addr, uint32) {
	n := normName(qname)
	inDomain := false
	switch {
	case n == domain:
		return answer, nil, 0
	case strings.HasSuffix(n, "."+domain):
		n = strings.TrimSuffix(n, "."+domain)
		inDomain = true
	}
	if aliases := t.aliases[t.scopes[client.Unmap()]]; aliases != nil {
		if svc, ok := aliases[n]; ok {
			n = svc
		} else if rest, ok := strings.CutPrefix(n, "tasks."); ok {
			if svc, ok := aliases[rest]; ok {
				n = "tasks." + svc
			}
		}
	}
	if rest, ok := strings.CutPrefix(n, "tasks."); ok {
		if addrs, known := t.tasks[rest]; known {
			return answer, addrs, tasksTTL
		}
		if _, known := t.services[rest]; known {
			return answer, nil, tasksTTL // a service with no healthy task
		}
	} else if vip, ok := t.services[n]; ok {
		return answer, []netip.Addr{vip}, serviceTTL
	}
	if inDomain {
		return nxdomain, nil, negTTL
	}
	return forward, nil, 0
}

// soa is the authority record of negative answers, which resolvers use as
// the negative-cache TTL.
func soa(domain string) mdns.RR {
	fq := mdns.Fqdn(domain)
	return &mdns.SOA{
		Hdr:     mdns.RR_Header{Name: fq, Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: negTTL},
		Ns:      "ns." + fq,
		Mbox:    "hostmaster." + fq,
		Serial:  1,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  negTTL,
	}
}

// validName accepts lower-case host names: dot-separated labels of letters,
// digits, '-' and '_' (Swarm and Compose names use underscores), 1-63 bytes.
func validName(n string) bool {
	if n == "" || len(n) > 253 {
		return false
	}
	for _, l := range strings.Split(n, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
