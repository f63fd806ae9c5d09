package endpoints

import (
	"encoding/binary"
	"hash/maphash"
	"slices"
	"sort"
	"strings"

	"github.com/warrenhq/warren/controlplane/api"
)

// Shared is what every node's assignments at one view have in common,
// computed once: with N nodes watching, a store change would otherwise
// recompute every service's endpoints N times (the heartbeat storms of
// Swarm's dispatcher and Nomad's C1M notes). Only each node's own tasks,
// subnet and role, and itself left out of the peers, differ per node.
//
// A Shared is immutable once built and safe for concurrent use.
type Shared struct {
	index    uint64
	network  api.ClusterNetwork // without the node's subnet
	services []api.ServiceEndpoints
	// keys are services' keys (serviceKey), by position; nil when the
	// view had no ServiceTasksChanged.
	keys     []uint64
	peers    []api.Peer // every node that can be meshed with, by node ID
	managers []string
	// managerIDs are the managers' node IDs, sorted.
	managerIDs []string
	nodes      map[string]nodeFacts
	// nodeTasks are a node's tasks by task ID, as the store holds them
	// (Header leaves out those being removed and holds the draining).
	nodeTasks func(nodeID string) []api.Task
	// stopAfter is each service's disconnect stop-after, where set.
	stopAfter map[string]api.Duration
}

type nodeFacts struct {
	subnet string
	role   api.NodeRole
}

// NewShared computes the node-independent part of view's assignments.
func NewShared(view ClusterView) *Shared { return NewSharedFrom(view, nil) }

// NewSharedFrom is NewShared reusing what prev computed (prev may be nil):
// a service whose key — its own version, when its tasks were last written,
// and which nodes are down: all Compute reads — is the one it had in prev
// keeps prev's entry instead of being read and computed again. A change
// touches a few services; the table has them all. Without
// view.ServiceTasksChanged nothing is keyed and every entry is computed.
func NewSharedFrom(view ClusterView, prev *Shared) *Shared {
	s := &Shared{
		index: view.Index,
		network: api.ClusterNetwork{
			PodCIDR:     view.Cluster.Network.PodCIDR,
			ServiceCIDR: view.Cluster.Network.ServiceCIDR,
			Domain:      view.Cluster.Network.Domain,
		},
		services:  make([]api.ServiceEndpoints, 0, len(view.Services)),
		peers:     []api.Peer{},
		managers:  []string{},
		nodes:     make(map[string]nodeFacts, len(view.Nodes)),
		nodeTasks: view.NodeTasks,
	}
	var byNode map[string][]api.Task
	if s.nodeTasks == nil {
		byNode = map[string][]api.Task{}
		s.nodeTasks = func(id string) []api.Task { return byNode[id] }
	}
	// A task on a node marked down keeps its desired state (the node may
	// be only cut off, and come back with it) but is in no table.
	down := map[string]bool{}
	for _, n := range view.Nodes {
		if n.Status.State == api.NodeDown {
			down[n.ID] = true
		}
	}
	// Without the store's indexes (ForNode, tests), from every task.
	if byNode != nil {
		for _, t := range view.Tasks {
			byNode[t.NodeID] = append(byNode[t.NodeID], t)
		}
		for _, ts := range byNode {
			sort.Slice(ts, func(i, j int) bool { return ts[i].ID < ts[j].ID })
		}
	}
	serviceTasks := view.ServiceTasks
	if serviceTasks == nil {
		byService := map[string][]api.Task{}
		for _, t := range view.Tasks {
			byService[t.ServiceID] = append(byService[t.ServiceID], t)
		}
		serviceTasks = func(id string) []api.Task { return byService[id] }
	}
	keyed := view.ServiceTasksChanged != nil && view.ServiceTasks != nil
	var downSum maphash.Hash
	downSum.SetSeed(keySeed)
	for _, n := range view.Nodes {
		if down[n.ID] {
			downSum.WriteString(n.ID)
			downSum.WriteByte(0)
		}
	}
	if prev != nil && prev.keys == nil {
		prev = nil
	}
	// By ID, so that services and keys come out in the table's order.
	services := view.Services
	if !slices.IsSortedFunc(services, byServiceID) {
		services = slices.SortedFunc(slices.Values(services), byServiceID)
	}
	for _, svc := range services {
		var key uint64
		if keyed {
			key = serviceKey(&svc, view.ServiceTasksChanged(svc.ID), downSum.Sum64())
			s.keys = append(s.keys, key)
		}
		if i, ok := prev.find(svc.ID); keyed && ok && prev.keys[i] == key {
			s.services = append(s.services, prev.services[i])
		} else {
			ts := serviceTasks(svc.ID)
			if len(down) > 0 {
				ts = slices.DeleteFunc(slices.Clone(ts), func(t api.Task) bool { return down[t.NodeID] })
			}
			s.services = append(s.services, Compute(svc, ts))
		}
		if d := svc.Spec.Disconnect; d != nil && d.StopAfter > 0 {
			if s.stopAfter == nil {
				s.stopAfter = map[string]api.Duration{}
			}
			s.stopAfter[svc.ID] = d.StopAfter
		}
	}
	for _, n := range view.Nodes {
		subnet := subnetOf(view.Cluster, &n)
		s.nodes[n.ID] = nodeFacts{subnet: subnet, role: n.Spec.Role}
		if n.Status.Manager != nil && n.Status.Manager.APIAddr != "" {
			s.managers = append(s.managers, n.Status.Manager.APIAddr)
			s.managerIDs = append(s.managerIDs, n.ID)
		}
		if n.Status.State != api.NodeReady || subnet == "" || n.Status.Network.WGPublicKey == "" {
			continue
		}
		s.peers = append(s.peers, api.Peer{
			NodeID:      n.ID,
			Addr:        n.Status.Addr,
			Subnet:      subnet,
			WGPublicKey: n.Status.Network.WGPublicKey,
			WGEndpoint:  wgEndpoint(view.Cluster, &n),
		})
	}
	sort.Strings(s.managers)
	sort.Strings(s.managerIDs)
	sort.Slice(s.peers, func(i, j int) bool { return s.peers[i].NodeID < s.peers[j].NodeID })
	return s
}

func byServiceID(a, b api.Service) int { return strings.Compare(a.ID, b.ID) }

// find is the position of service id in s (nil: none).
func (s *Shared) find(id string) (int, bool) {
	if s == nil {
		return 0, false
	}
	return slices.BinarySearchFunc(s.services, id, func(e api.ServiceEndpoints, id string) int { return strings.Compare(e.ServiceID, id) })
}

// keySeed seeds the services' keys: they are compared only within this
// process, between tables built here.
var keySeed = maphash.MakeSeed()

// serviceKey fingerprints what Compute reads of one service (maphash, 64
// bits): the service's version, the index its tasks were last written at,
// and which nodes are down (down, hashed over them). The store stamps every
// write with its index, so an equal key is an equal entry, short of a
// 2⁻⁶⁴ accident between two versions of the same service. A node going
// down or up moves every key: that is rare, and cheaper than finding
// which services have tasks there.
func serviceKey(svc *api.Service, tasksChanged, down uint64) uint64 {
	var h maphash.Hash
	h.SetSeed(keySeed)
	h.WriteString(svc.ID)
	var b [24]byte
	binary.LittleEndian.PutUint64(b[0:], svc.Meta.Version)
	binary.LittleEndian.PutUint64(b[8:], tasksChanged)
	binary.LittleEndian.PutUint64(b[16:], down)
	h.Write(b[:])
	return h.Sum64()
}

// handed is what a node is handed of its tasks: a copy, without those
// being removed, a draining task held as running (api.Drain).
func handed(ts []api.Task) []api.Task {
	out := make([]api.Task, 0, len(ts))
	for _, t := range ts {
		if t.Draining() {
			out = append(out, held(t))
		} else if t.DesiredState != api.TaskRemove {
			out = append(out, t)
		}
	}
	return out
}

// Index is the raft index of the view.
func (s *Shared) Index() uint64 { return s.index }

// Services are every service's endpoints, by service ID; do not modify.
func (s *Shared) Services() []api.ServiceEndpoints { return s.services }

// ServiceKeys are the services' keys, by the position of Services (nil
// when the view had no ServiceTasksChanged): equal keys, equal entries.
func (s *Shared) ServiceKeys() []uint64 { return s.keys }

// Peers are every node that can be meshed with, by node ID; a node's own
// assignments leave it out. Do not modify.
func (s *Shared) Peers() []api.Peer { return s.peers }

// ForNode is endpoints.ForNode for nodeID at this view. The slices it
// returns are the node's own (changing them does not change s).
func (s *Shared) ForNode(nodeID string) api.Assignments {
	a := s.Header(nodeID)
	a.Services = slices.Clone(s.services)
	a.Peers = make([]api.Peer, 0, len(s.peers))
	for _, p := range s.peers {
		if p.NodeID != nodeID {
			a.Peers = append(a.Peers, p)
		}
	}
	return a
}

// Header is ForNode without Services and Peers (both nil), for a caller
// that encodes the shared parts once.
func (s *Shared) Header(nodeID string) api.Assignments {
	f := s.nodes[nodeID]
	a := api.Assignments{
		Index:      s.index,
		NodeID:     nodeID,
		Tasks:      handed(s.nodeTasks(nodeID)),
		Managers:   slices.Clone(s.managers),
		ManagerIDs: slices.Clone(s.managerIDs),
		Network:    s.network,
		Role:       f.role,
	}
	a.Network.Subnet = f.subnet
	for _, t := range a.Tasks {
		if d, ok := s.stopAfter[t.ServiceID]; ok {
			if a.StopAfter == nil {
				a.StopAfter = map[string]api.Duration{}
			}
			a.StopAfter[t.ServiceID] = d
		}
	}
	return a
}
