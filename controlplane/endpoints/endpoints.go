package endpoints

import (
	"net"
	"sort"
	"strconv"

	"github.com/warrenhq/warren/controlplane/api"
)

// Compute returns the service's backends grouped by task.Version.
//
// Weights come from the open canary or blue-green rollout
// (svc.Update.Weights); a version the rollout does not mention gets 0. With
// no weights — no rollout, or a rolling update — a single version gets 100
// and several versions share 100 in proportion to their active backends, so
// every healthy backend gets an equal share as a rolling update proceeds.
//
// Only tasks with an address are backends: running and healthy (or without
// a health check) is active; asked to stop but not yet stopped is
// terminating, so open connections drain; anything else is unhealthy.
// Terminal tasks are omitted.
func Compute(svc api.Service, tasks []api.Task) api.ServiceEndpoints {
	out := api.ServiceEndpoints{
		ServiceID: svc.ID,
		Name:      svc.Spec.Name,
		VIP:       svc.Endpoint.VIP,
		Ports:     svc.Endpoint.Ports,
	}
	if len(out.Ports) == 0 {
		out.Ports = svc.Spec.Ports
	}
	if scope, alias := svc.Spec.Labels[api.LabelStack], svc.Spec.Labels[api.LabelStackService]; scope != "" && alias != "" {
		out.Scope, out.Aliases = scope, []string{alias}
	}
	groups := map[string]*api.VersionGroup{}
	group := func(v string) *api.VersionGroup {
		g := groups[v]
		if g == nil {
			g = &api.VersionGroup{Version: v, Backends: []api.Backend{}}
			groups[v] = g
		}
		return g
	}
	var weights map[string]uint32
	if svc.Update != nil && len(svc.Update.Weights) > 0 {
		weights = svc.Update.Weights
		for v := range weights {
			group(v)
		}
	}
	for _, t := range tasks {
		if t.ServiceID != svc.ID || t.Status.Addr == "" || t.Status.State.Terminal() {
			continue
		}
		g := group(t.Version)
		g.Backends = append(g.Backends, api.Backend{TaskID: t.ID, NodeID: t.NodeID, Addr: t.Status.Addr, Health: health(&t)})
	}

	versions := make([]string, 0, len(groups))
	for v := range groups {
		versions = append(versions, v)
	}
	sort.Strings(versions)
	for _, v := range versions {
		g := groups[v]
		sort.Slice(g.Backends, func(i, j int) bool { return g.Backends[i].TaskID < g.Backends[j].TaskID })
		out.Groups = append(out.Groups, *g)
	}
	if weights != nil {
		for i := range out.Groups {
			out.Groups[i].Weight = weights[out.Groups[i].Version]
		}
	} else {
		proportional(out.Groups)
	}
	return out
}

func health(t *api.Task) api.BackendHealth {
	switch {
	case t.DesiredState == api.TaskShutdown || t.DesiredState == api.TaskRemove || t.DesiredState.Terminal():
		return api.BackendTerminating
	case t.Status.State == api.TaskRunning && (t.Status.Health == api.HealthHealthy || t.Status.Health == api.HealthNone && t.Spec.Health == nil):
		return api.BackendActive
	default:
		return api.BackendUnhealthy
	}
}

// proportional splits 100 between groups by active backends using largest
// remainders, so the weights always sum to exactly 100 when anything is
// active. Ties in the remainder go to the earlier version for determinism.
func proportional(groups []api.VersionGroup) {
	active := make([]int, len(groups))
	total := 0
	for i, g := range groups {
		for _, b := range g.Backends {
			if b.Health == api.BackendActive {
				active[i]++
			}
		}
		total += active[i]
	}
	if total == 0 {
		// Nothing can take traffic; keep a single version addressable so
		// the dataplane still knows the service exists.
		if len(groups) == 1 {
			groups[0].Weight = 100
		}
		return
	}
	given := 0
	rem := make([]int, len(groups))
	for i := range groups {
		groups[i].Weight = uint32(100 * active[i] / total)
		rem[i] = 100 * active[i] % total
		given += int(groups[i].Weight)
	}
	idx := make([]int, len(groups))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return rem[idx[a]] > rem[idx[b]] })
	for k := 0; given < 100; k++ {
		groups[idx[k%len(idx)]].Weight++
		given++
	}
}

// ClusterView is the part of a snapshot ForNode reads.
type ClusterView struct {
	// Index is the raft index of the snapshot; the agent echoes it in its
	// next blocking query.
	Index    uint64
	Cluster  api.Cluster
	Nodes    []api.Node
	Services []api.Service
	Tasks    []api.Task
	// NodeTasks, when set, returns the tasks assigned to one node sorted by
	// task ID (the store's index): a Shared then keeps it rather than a copy
	// of every task grouped by node. A Shared lives as long as the slowest
	// answer built from it, and at 10,000 tasks each copy was some 20 MB:
	// hundreds of agents' answers in flight, each on its own index, held
	// gigabytes on the leader.
	NodeTasks func(nodeID string) []api.Task
	// ServiceTasks, when set, returns one service's tasks sorted by task ID
	// (the store's index), and Tasks is not read: the service table is
	// computed one service at a time from the index instead of from a copy
	// of every task regrouped by service — two copies of every task per
	// table, a third of the leader's allocations at 100 nodes.
	ServiceTasks func(serviceID string) []api.Task
	// ServiceTasksChanged, when set with ServiceTasks, is the raft index of
	// the last write to any of one service's tasks (the store's
	// View.ServiceTasksChanged): NewSharedFrom keys each service by it and
	// reuses the entry of a service whose key did not move.
	ServiceTasksChanged func(serviceID string) uint64
}

// ForNode returns everything node nodeID needs and nothing addressed to any
// other node: its own tasks except those being removed (the agent stops and
// deletes what disappears from its assignments) — a draining task is still
// handed over as running, since its stop waits for the other nodes' tables
// (api.Drain) — every service's endpoints
// (any task on the node may call any service), the other ready nodes that can
// be meshed with (they have a subnet and a WireGuard key), the cluster's
// network with this node's subnet, the managers' API addresses, and the
// disconnect stop-after of the services it runs. Tasks on nodes marked down
// are no backend (nobody can reach them; their node, back, is no longer
// down).
//
// Answering many nodes from one view, build NewShared once and call its
// ForNode: the services, peers and managers are the same for every node.
func ForNode(nodeID string, view ClusterView) api.Assignments {
	return NewShared(view).ForNode(nodeID)
}

// subnetOf prefers the allocation recorded in raft; the node's own report is
// a fallback for a node whose status was written before the cluster map.
func subnetOf(c api.Cluster, n *api.Node) string {
	if s := c.Subnets[n.ID]; s != "" {
		return s
	}
	return n.Status.Network.Subnet
}

func wgEndpoint(c api.Cluster, n *api.Node) string {
	if n.Status.Network.WGEndpoint != "" || n.Status.Addr == "" || c.Network.WGPort == 0 {
		return n.Status.Network.WGEndpoint
	}
	return net.JoinHostPort(n.Status.Addr, strconv.Itoa(int(c.Network.WGPort)))
}

// held is a draining task as its node sees it: still desired running, so the
// node keeps serving the connections it has while every service table
// (computed from the real desired state) already lists it as terminating.
func held(t api.Task) api.Task {
	t.DesiredState = api.TaskRunning
	return t
}
