// Package fake is an in-memory Dataplane for tests of the agent and for the
// conformance table: Set computes the same slot tables as the real
// implementations and Resolve picks a backend the way the kernel would.
//
// It imports only dataplane and the standard library.
package fake

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"syscall"

	"github.com/warrenhq/warren/dataplane"
)

// Node is the state a node's dataplane keeps across restarts (what pinned
// maps are for the eBPF implementation).
type Node struct {
	mu      sync.Mutex
	fronts  map[frontKey]frontend
	last    *dataplane.Config
	sets    int
	conns   map[string]*dataplane.ServiceCounters
	rand    *rand.Rand
	lastSvc map[string]string
}

type frontKey struct {
	addr  netip.Addr
	port  uint16
	proto dataplane.Protocol
}

type frontend struct {
	service string
	target  uint16
	slots   []dataplane.Backend
}

// NewNode returns an empty node whose picks come from r.
func NewNode(r *rand.Rand) *Node {
	return &Node{fronts: map[frontKey]frontend{}, conns: map[string]*dataplane.ServiceCounters{}, rand: r}
}

// New returns a Dataplane bound to the node; after Close the node keeps its
// table, as pinned maps would.
func (n *Node) New() dataplane.Dataplane { return &Dataplane{n: n} }

// Dataplane is the fake implementation.
type Dataplane struct {
	n      *Node
	closed bool
}

// Set validates cfg and replaces the node's table; nil empties it.
func (d *Dataplane) Set(cfg *dataplane.Config) error {
	if d.closed {
		return errors.New("fake dataplane: closed")
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg == nil {
		cfg = &dataplane.Config{}
	}
	n := d.n
	n.mu.Lock()
	defer n.mu.Unlock()
	fronts := map[frontKey]frontend{}
	for _, s := range cfg.Services {
		slots := dataplane.SlotTable(s.Groups)
		for _, p := range s.Ports {
			f := frontend{service: s.Name, target: p.TargetPort, slots: slots}
			fronts[frontKey{s.VIP, p.Port, p.Proto}] = f
			if p.Published != 0 {
				fronts[frontKey{netip.IPv4Unspecified(), p.Published, p.Proto}] = f
			}
		}
	}
	n.fronts = fronts
	n.last = cfg
	n.sets++
	return nil
}

// Close detaches this instance; the node keeps serving.
func (d *Dataplane) Close() error { d.closed = true; return nil }

// Counters implements dataplane.CounterSource.
func (d *Dataplane) Counters() ([]dataplane.ServiceCounters, error) {
	d.n.mu.Lock()
	defer d.n.mu.Unlock()
	var out []dataplane.ServiceCounters
	for _, c := range d.n.conns {
		out = append(out, *c)
	}
	return out, nil
}

// Last returns the last config Set on the node and how many Sets there were.
func (n *Node) Last() (*dataplane.Config, int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.last, n.sets
}

// Resolve picks the backend a connect to addr would reach. Addresses that
// are no frontend resolve to themselves; a frontend without backends fails
// with ECONNREFUSED, as the real dataplanes fail fast.
func (n *Node) Resolve(proto dataplane.Protocol, addr netip.AddrPort) (netip.AddrPort, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	f, ok := n.fronts[frontKey{addr.Addr(), addr.Port(), proto}]
	if !ok && addr.Addr().IsLoopback() {
		f, ok = n.fronts[frontKey{netip.IPv4Unspecified(), addr.Port(), proto}]
	}
	if !ok {
		return addr, nil
	}
	c := n.conns[f.service]
	if c == nil {
		c = &dataplane.ServiceCounters{Service: f.service, Backends: map[string]uint64{}}
		n.conns[f.service] = c
	}
	if len(f.slots) == 0 {
		c.Drops++
		return netip.AddrPort{}, fmt.Errorf("connect %v: %w", addr, syscall.ECONNREFUSED)
	}
	b := f.slots[n.rand.IntN(len(f.slots))]
	c.Connections++
	c.Backends[b.ID]++
	return netip.AddrPortFrom(b.Addr, f.target), nil
}
