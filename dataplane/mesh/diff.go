package mesh

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// PeerOp is what happens to one peer.
type PeerOp string

const (
	PeerAdd    PeerOp = "add"
	PeerUpdate PeerOp = "update"
	PeerRemove PeerOp = "remove"
)

// PeerChange is one peer operation. Peers are identified by public key: a
// node that changed its key is a removal of the old peer and an addition of
// the new one.
type PeerChange struct {
	Op   PeerOp
	Peer Peer
}

// Plan is what turns the applied config into the desired one.
type Plan struct {
	ListenPort *uint16 // nil: unchanged
	Address    *netip.Prefix
	Peers      []PeerChange // sorted: removals first, then by key
	RoutesAdd  []netip.Prefix
	RoutesDel  []netip.Prefix
}

// Empty reports whether the plan changes nothing.
func (p Plan) Empty() bool {
	return p.ListenPort == nil && p.Address == nil && len(p.Peers) == 0 && len(p.RoutesAdd) == 0 && len(p.RoutesDel) == 0
}

// Diff computes the plan from cur (nil: nothing applied yet) to want.
func Diff(cur, want *Config) Plan {
	if cur == nil {
		cur = &Config{}
	}
	if want == nil {
		want = &Config{}
	}
	var p Plan
	if cur.ListenPort != want.ListenPort {
		lp := want.ListenPort
		p.ListenPort = &lp
	}
	if cur.Address != want.Address {
		a := want.Address
		p.Address = &a
	}
	have := map[string]Peer{}
	for _, pr := range cur.Peers {
		have[pr.PublicKey] = pr
	}
	seen := map[string]bool{}
	for _, pr := range want.Peers {
		seen[pr.PublicKey] = true
		old, ok := have[pr.PublicKey]
		switch {
		case !ok:
			p.Peers = append(p.Peers, PeerChange{PeerAdd, pr})
		case old.Endpoint != pr.Endpoint || !samePrefixes(old.AllowedIPs, pr.AllowedIPs):
			p.Peers = append(p.Peers, PeerChange{PeerUpdate, pr})
		}
	}
	for _, pr := range cur.Peers {
		if !seen[pr.PublicKey] {
			p.Peers = append(p.Peers, PeerChange{PeerRemove, pr})
		}
	}
	// Removals first: a subnet moving from an old key to a new one must leave
	// the old peer before the new peer claims it (WireGuard moves an allowed
	// IP to whichever peer claimed it last).
	sort.SliceStable(p.Peers, func(i, j int) bool {
		ri, rj := p.Peers[i].Op == PeerRemove, p.Peers[j].Op == PeerRemove
		if ri != rj {
			return ri
		}
		return p.Peers[i].Peer.PublicKey < p.Peers[j].Peer.PublicKey
	})
	p.RoutesAdd, p.RoutesDel = DiffPrefixes(routesOf(cur), routesOf(want))
	return p
}

// routesOf is the set of destinations routed through the interface: every
// peer's allowed IPs.
func routesOf(c *Config) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range c.Peers {
		for _, a := range p.AllowedIPs {
			out = append(out, a.Masked())
		}
	}
	return out
}

// DiffPrefixes returns the prefixes to add and to delete to turn have into
// want, each sorted and without duplicates.
func DiffPrefixes(have, want []netip.Prefix) (add, del []netip.Prefix) {
	h, w := map[netip.Prefix]bool{}, map[netip.Prefix]bool{}
	for _, p := range have {
		h[p.Masked()] = true
	}
	for _, p := range want {
		w[p.Masked()] = true
	}
	for p := range w {
		if !h[p] {
			add = append(add, p)
		}
	}
	for p := range h {
		if !w[p] {
			del = append(del, p)
		}
	}
	less := func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	}
	slices.SortFunc(add, less)
	slices.SortFunc(del, less)
	return add, del
}

func samePrefixes(a, b []netip.Prefix) bool {
	add, del := DiffPrefixes(a, b)
	return len(add) == 0 && len(del) == 0
}

func keyHex(b64 string) (string, error) {
	k, err := wgtypes.ParseKey(b64)
	if err != nil {
		return "", fmt.Errorf("parse key: %w", err)
	}
	return hex.EncodeToString(k[:]), nil
}

// UAPI renders the peer and port changes of the plan in wireguard-go's
// configuration protocol (the text `wg set` sends over the UAPI socket).
func (p Plan) UAPI() (string, error) {
	var b strings.Builder
	if p.ListenPort != nil {
		fmt.Fprintf(&b, "listen_port=%d\n", *p.ListenPort)
	}
	for _, c := range p.Peers {
		k, err := keyHex(c.Peer.PublicKey)
		if err != nil {
			return "", fmt.Errorf("peer %q: %w", c.Peer.PublicKey, err)
		}
		fmt.Fprintf(&b, "public_key=%s\n", k)
		if c.Op == PeerRemove {
			b.WriteString("remove=true\n")
			continue
		}
		if c.Op == PeerUpdate {
			b.WriteString("update_only=true\n")
		}
		if c.Peer.Endpoint.IsValid() {
			fmt.Fprintf(&b, "endpoint=%s\n", c.Peer.Endpoint)
		}
		fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", keepaliveSeconds)
		b.WriteString("replace_allowed_ips=true\n")
		for _, a := range c.Peer.AllowedIPs {
			fmt.Fprintf(&b, "allowed_ip=%s\n", a.Masked())
		}
	}
	return b.String(), nil
}

// WGConfig renders the peer and port changes for the kernel through wgctrl.
func (p Plan) WGConfig() (wgtypes.Config, error) {
	var cfg wgtypes.Config
	if p.ListenPort != nil {
		lp := int(*p.ListenPort)
		cfg.ListenPort = &lp
	}
	ka := keepaliveSeconds * time.Second
	for _, c := range p.Peers {
		k, err := wgtypes.ParseKey(c.Peer.PublicKey)
		if err != nil {
			return cfg, fmt.Errorf("peer %q: parse key: %w", c.Peer.PublicKey, err)
		}
		pc := wgtypes.PeerConfig{PublicKey: k}
		if c.Op == PeerRemove {
			pc.Remove = true
			cfg.Peers = append(cfg.Peers, pc)
			continue
		}
		pc.UpdateOnly = c.Op == PeerUpdate
		if c.Peer.Endpoint.IsValid() {
			pc.Endpoint = netUDPAddr(c.Peer.Endpoint)
		}
		pc.PersistentKeepaliveInterval = &ka
		pc.ReplaceAllowedIPs = true
		for _, a := range c.Peer.AllowedIPs {
			pc.AllowedIPs = append(pc.AllowedIPs, prefixIPNet(a.Masked()))
		}
		cfg.Peers = append(cfg.Peers, pc)
	}
	return cfg, nil
}

// String renders the plan as golden-test text.
func (p Plan) String() string {
	var b strings.Builder
	if p.ListenPort != nil {
		fmt.Fprintf(&b, "port %d\n", *p.ListenPort)
	}
	if p.Address != nil {
		fmt.Fprintf(&b, "address %s\n", *p.Address)
	}
	for _, c := range p.Peers {
		fmt.Fprintf(&b, "peer %s %s", c.Op, c.Peer.PublicKey)
		if c.Op != PeerRemove {
			fmt.Fprintf(&b, " %s %v", c.Peer.Endpoint, c.Peer.AllowedIPs)
		}
		b.WriteString("\n")
	}
	for _, r := range p.RoutesDel {
		fmt.Fprintf(&b, "route del %s\n", r)
	}
	for _, r := range p.RoutesAdd {
		fmt.Fprintf(&b, "route add %s\n", r)
	}
	return b.String()
}
