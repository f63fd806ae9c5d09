package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
)

// ErrExhausted means every assignable address of the subnet is leased.
var ErrExhausted = errors.New("ipam: subnet exhausted")

// Owner identifies a lease. CNI identifies an attachment by container id and
// interface name, so the same container asking again for the same interface
// gets the same address (ADD is idempotent).
type Owner struct {
	ContainerID string `json:"container_id"`
	IfName      string `json:"if_name"`
}

func (o Owner) String() string { return o.ContainerID + "/" + o.IfName }

// Pool is the lease table of one IPv4 subnet. Its zero value is not usable;
// build one with NewPool. It is not safe for concurrent use: Store adds the
// locking.
type Pool struct {
	Subnet netip.Prefix `json:"subnet"`
	// Last is the most recently allocated address. Allocation continues after
	// it rather than from the bottom so a freed address is not handed to the
	// next container at once, which would let stale conntrack entries or
	// in-flight packets reach the wrong container.
	Last   netip.Addr           `json:"last,omitempty"`
	Leases map[netip.Addr]Owner `json:"leases"`
}

// NewPool returns an empty pool for subnet, which must be IPv4 with at least
// four addresses (network, gateway, one host, broadcast).
func NewPool(subnet netip.Prefix) (*Pool, error) {
	if !subnet.IsValid() || !subnet.Addr().Is4() {
		return nil, fmt.Errorf("ipam: subnet %s: want an IPv4 prefix", subnet)
	}
	if subnet.Bits() > 30 {
		return nil, fmt.Errorf("ipam: subnet %s: too small, want /30 or larger", subnet)
	}
	return &Pool{Subnet: subnet.Masked(), Leases: map[netip.Addr]Owner{}}, nil
}

// Gateway is the first host address of subnet; the node's bridge holds it.
func Gateway(subnet netip.Prefix) netip.Addr {
	return subnet.Masked().Addr().Next()
}

// Broadcast is the last address of subnet.
func Broadcast(subnet netip.Prefix) netip.Addr {
	a := subnet.Masked().Addr().As4()
	host := uint32(1)<<(32-subnet.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Reserved reports whether addr is never handed out: the network address,
// the gateway and the broadcast address.
func (p *Pool) Reserved(addr netip.Addr) bool {
	return addr == p.Subnet.Addr() || addr == Gateway(p.Subnet) || addr == Broadcast(p.Subnet)
}

// Lookup returns the address leased to owner.
func (p *Pool) Lookup(owner Owner) (netip.Addr, bool) {
	for a, o := range p.Leases {
		if o == owner {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// Allocate leases an address to owner, or returns the one it already holds.
func (p *Pool) Allocate(owner Owner) (netip.Addr, error) {
	if owner.ContainerID == "" {
		return netip.Addr{}, errors.New("ipam: empty container id")
	}
	if a, ok := p.Lookup(owner); ok {
		return a, nil
	}
	first := Gateway(p.Subnet).Next()
	bcast := Broadcast(p.Subnet)
	start := first
	if p.Last.IsValid() && p.Subnet.Contains(p.Last) && p.Last.Next() != bcast && !p.Reserved(p.Last.Next()) {
		start = p.Last.Next()
	}
	a := start
	for {
		if _, taken := p.Leases[a]; !taken && !p.Reserved(a) {
			p.Leases[a] = owner
			p.Last = a
			return a, nil
		}
		a = a.Next()
		if a == bcast || !p.Subnet.Contains(a) {
			a = first
		}
		if a == start {
			return netip.Addr{}, fmt.Errorf("%w: %s", ErrExhausted, p.Subnet)
		}
	}
}

// Release frees the address leased to owner. Releasing an unknown owner is
// not an error: CNI DEL must succeed for containers it never saw.
func (p *Pool) Release(owner Owner) (netip.Addr, bool) {
	a, ok := p.Lookup(owner)
	if ok {
		delete(p.Leases, a)
	}
	return a, ok
}

// ReleaseContainer frees every lease of a container, whatever the interface.
func (p *Pool) ReleaseContainer(containerID string) []netip.Addr {
	var freed []netip.Addr
	for a, o := range p.Leases {
		if o.ContainerID == containerID {
			delete(p.Leases, a)
			freed = append(freed, a)
		}
	}
	sort.Slice(freed, func(i, j int) bool { return freed[i].Less(freed[j]) })
	return freed
}

// Retain frees every lease whose owner is not in valid and returns the
// freed owners, sorted. It is CNI GC: the runtime names the attachments it
// still knows and everything else is a leak.
func (p *Pool) Retain(valid map[Owner]bool) []Owner {
	var freed []Owner
	for a, o := range p.Leases {
		if !valid[o] {
			delete(p.Leases, a)
			freed = append(freed, o)
		}
	}
	sort.Slice(freed, func(i, j int) bool { return freed[i].String() < freed[j].String() })
	return freed
}
