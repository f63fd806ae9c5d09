package scheduler

import (
	"fmt"

	"github.com/warrenhq/warren/controlplane/api"
)

// NodeInfo is a node together with what is already committed to it: the
// reservations and counts of every non-terminal task placed there, including
// tasks placed earlier in the same Schedule call.
type NodeInfo struct {
	Node     *api.Node
	Reserved api.Resources
	// Tasks counts all non-terminal tasks on the node; ServiceTasks counts
	// them per service ID.
	Tasks        int
	ServiceTasks map[string]int
}

func (n *NodeInfo) add(t *api.Task) {
	r := t.Spec.Resources.Reservations
	n.Reserved.NanoCPUs += positive(r.NanoCPUs)
	n.Reserved.MemoryBytes += positive(r.MemoryBytes)
	n.Reserved.Pids += positive(r.Pids)
	n.Tasks++
	n.ServiceTasks[t.ServiceID]++
}

func positive(v int64) int64 {
	if v < 0 {
		return 0
	}
	return v
}

// Filter is one feasibility rule. Check says whether a task may go to the
// node; Explain says, for a user reading `warren service ps`, why count
// nodes were refused by this rule.
type Filter interface {
	Check(n *NodeInfo) bool
	Explain(count int) string
}

// Filters returns the feasibility rules for task in the order they are
// evaluated. Cheap, common refusals come first so that the explanation names
// the most basic reason a node was unusable.
func Filters(task *api.Task) ([]Filter, error) {
	cons, err := ParseConstraints(task.Spec.Placement.Constraints)
	if err != nil {
		return nil, err
	}
	fs := []Filter{readyFilter{}, availabilityFilter{}}
	if task.NodeID != "" {
		// Global tasks arrive with their node chosen by the orchestrator;
		// the scheduler only confirms that node can take them.
		fs = append(fs, pinnedFilter{task.NodeID})
	}
	for _, c := range cons {
		fs = append(fs, constraintFilter{c})
	}
	if pf := newPlatformFilter(task); pf != nil {
		fs = append(fs, pf)
	}
	if m := task.Spec.Placement.MaxReplicas; m > 0 {
		fs = append(fs, maxReplicasFilter{task.ServiceID, m})
	}
	r := task.Spec.Resources.Reservations
	if v := positive(r.NanoCPUs); v > 0 {
		fs = append(fs, resourceFilter{"cpu", v, func(x api.Resources) int64 { return x.NanoCPUs }})
	}
	if v := positive(r.MemoryBytes); v > 0 {
		fs = append(fs, resourceFilter{"memory", v, func(x api.Resources) int64 { return x.MemoryBytes }})
	}
	if v := positive(r.Pids); v > 0 {
		fs = append(fs, resourceFilter{"pids", v, func(x api.Resources) int64 { return x.Pids }})
	}
	return fs, nil
}

// isStatic reports whether a filter's verdict depends only on the node, not
// on what is placed on it, so it can be evaluated once per task shape.
func isStatic(f Filter) bool {
	if s, ok := f.(interface{ static() bool }); ok {
		return s.static()
	}
	switch f.(type) {
	case readyFilter, availabilityFilter, pinnedFilter, constraintFilter:
		return true
	}
	return false
}

type readyFilter struct{}

func (readyFilter) Check(n *NodeInfo) bool   { return n.Node.Status.State == api.NodeReady }
func (readyFilter) Explain(count int) string { return fmt.Sprintf("%d not ready", count) }

type availabilityFilter struct{}

func (availabilityFilter) Check(n *NodeInfo) bool { return Active(n.Node) }
func (availabilityFilter) Explain(count int) string {
	return fmt.Sprintf("%d not active (paused or drained)", count)
}

type pinnedFilter struct{ nodeID string }

func (f pinnedFilter) Check(n *NodeInfo) bool { return n.Node.ID == f.nodeID }
func (f pinnedFilter) Explain(count int) string {
	return fmt.Sprintf("%d not the task's node %s", count, f.nodeID)
}

type constraintFilter struct{ c Constraint }

func (f constraintFilter) Check(n *NodeInfo) bool { return f.c.Matches(n.Node) }
func (f constraintFilter) Explain(count int) string {
	return fmt.Sprintf("%d did not match constraint %s", count, f.c)
}

type maxReplicasFilter struct {
	serviceID string
	max       uint64
}

func (f maxReplicasFilter) Check(n *NodeInfo) bool {
	return uint64(n.ServiceTasks[f.serviceID]) < f.max
}
func (f maxReplicasFilter) Explain(count int) string {
	return fmt.Sprintf("%d already run the maximum of %d replicas per node", count, f.max)
}

// resourceFilter compares the reservation with capacity minus what is
// already reserved. Reservations are never over-committed: a node that does
// not report a capacity for a resource cannot take a task reserving it.
type resourceFilter struct {
	name string
	want int64
	get  func(api.Resources) int64
}

func (f resourceFilter) Check(n *NodeInfo) bool {
	return f.get(n.Reserved)+f.want <= f.get(n.Node.Status.Capacity)
}
func (f resourceFilter) Explain(count int) string {
	return fmt.Sprintf("%d insufficient %s", count, f.name)
}
