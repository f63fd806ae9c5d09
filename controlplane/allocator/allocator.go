package allocator

import (
	"fmt"
	"maps"
	"net/netip"
	"sort"

	"github.com/warrenhq/warren/controlplane/api"
)

// NodeSubnetBits is the size of each node's pod subnet.
const NodeSubnetBits = 24

// AllocateSubnet gives nodeID the lowest free /24 of the cluster's pod range.
// A node that already has a subnet keeps it (allocation is idempotent).
func AllocateSubnet(c api.Cluster, nodeID string) (api.Cluster, string, error) {
	if s, ok := c.Subnets[nodeID]; ok {
		return c, s, nil
	}
	pool, err := parseRange("pod", c.Network.PodCIDR)
	if err != nil {
		return c, "", err
	}
	if pool.Bits() > NodeSubnetBits {
		return c, "", fmt.Errorf("pod range %s is smaller than one /%d node subnet", pool, NodeSubnetBits)
	}
	used := map[netip.Addr]bool{}
	for _, s := range c.Subnets {
		if p, err := netip.ParsePrefix(s); err == nil {
			used[p.Masked().Addr()] = true
		}
	}
	n := 1 << (NodeSubnetBits - pool.Bits())
	a := pool.Addr()
	for i := 0; i < n; i++ {
		if !used[a] {
			s := netip.PrefixFrom(a, NodeSubnetBits).String()
			c.Subnets = with(c.Subnets, nodeID, s)
			return c, s, nil
		}
		a = add(a, 1<<(32-NodeSubnetBits))
	}
	return c, "", fmt.Errorf("pod range %s exhausted: all %d /%d subnets are allocated", pool, n, NodeSubnetBits)
}

// AllocateVIP gives serviceID the lowest free address of the service range.
// The network address, the first host address (kept for a cluster gateway or
// DNS) and the broadcast address are never handed out.
func AllocateVIP(c api.Cluster, serviceID string) (api.Cluster, string, error) {
	if v, ok := c.VIPs[serviceID]; ok {
		return c, v, nil
	}
	pool, err := parseRange("service", c.Network.ServiceCIDR)
	if err != nil {
		return c, "", err
	}
	if pool.Bits() > 30 {
		return c, "", fmt.Errorf("service range %s is too small: need at least a /30", pool)
	}
	used := map[netip.Addr]bool{}
	for _, v := range c.VIPs {
		if a, err := netip.ParseAddr(v); err == nil {
			used[a] = true
		}
	}
	size := 1 << (32 - pool.Bits())
	a := add(pool.Addr(), 2)
	for i := 2; i < size-1; i++ {
		if !used[a] {
			c.VIPs = with(c.VIPs, serviceID, a.String())
			return c, a.String(), nil
		}
		a = add(a, 1)
	}
	return c, "", fmt.Errorf("service range %s exhausted: all %d virtual IPs are allocated", pool, size-3)
}

// ReleaseSubnet frees a deleted node's subnet.
func ReleaseSubnet(c api.Cluster, nodeID string) api.Cluster {
	c.Subnets = without(c.Subnets, nodeID)
	return c
}

// ReleaseVIP frees a deleted service's virtual IP.
func ReleaseVIP(c api.Cluster, serviceID string) api.Cluster {
	c.VIPs = without(c.VIPs, serviceID)
	return c
}

// Reconcile brings the allocations in line with the nodes and services that
// exist: it releases first (so a deleted node's subnet can be reused in the
// same pass) and then allocates in ID order (so the result does not depend on
// the order of the snapshot). changed says whether the caller has anything to
// propose. On exhaustion it returns what it managed to allocate together with
// the error; the remaining objects simply stay without an address.
func Reconcile(c api.Cluster, nodes []api.Node, services []api.Service) (api.Cluster, bool, error) {
	orig := c
	changed := false
	nodeIDs := make([]string, 0, len(nodes))
	liveNodes := map[string]bool{}
	for _, n := range nodes {
		nodeIDs = append(nodeIDs, n.ID)
		liveNodes[n.ID] = true
	}
	svcIDs := make([]string, 0, len(services))
	liveSvcs := map[string]bool{}
	for _, s := range services {
		svcIDs = append(svcIDs, s.ID)
		liveSvcs[s.ID] = true
	}
	sort.Strings(nodeIDs)
	sort.Strings(svcIDs)

	for id := range orig.Subnets {
		if !liveNodes[id] {
			c, changed = ReleaseSubnet(c, id), true
		}
	}
	for id := range orig.VIPs {
		if !liveSvcs[id] {
			c, changed = ReleaseVIP(c, id), true
		}
	}
	var firstErr error
	for _, id := range nodeIDs {
		if _, ok := c.Subnets[id]; ok {
			continue
		}
		next, _, err := AllocateSubnet(c, id)
		if err != nil {
			firstErr = err
			break
		}
		c, changed = next, true
	}
	for _, id := range svcIDs {
		if _, ok := c.VIPs[id]; ok {
			continue
		}
		next, _, err := AllocateVIP(c, id)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			break
		}
		c, changed = next, true
	}
	return c, changed, firstErr
}

func parseRange(what, cidr string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return p, fmt.Errorf("%s range %q: %w", what, cidr, err)
	}
	if !p.Addr().Is4() {
		return p, fmt.Errorf("%s range %s: only IPv4 is supported", what, cidr)
	}
	return p.Masked(), nil
}

func add(a netip.Addr, n uint32) netip.Addr {
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += n
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// with and without copy the map so the caller's snapshot is never mutated.
func with(m map[string]string, k, v string) map[string]string {
	out := maps.Clone(m)
	if out == nil {
		out = map[string]string{}
	}
	out[k] = v
	return out
}

func without(m map[string]string, k string) map[string]string {
	if _, ok := m[k]; !ok {
		return m
	}
	out := maps.Clone(m)
	delete(out, k)
	return out
}
