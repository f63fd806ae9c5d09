package scheduler

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/warrenhq/warren/controlplane/api"
)

// Volumes follow the same Check/Explain shape as every other filter. A
// single-node volume's node can be decided inside one Schedule call (the
// first task placed with a new volume picks it), so its filters read a
// volumeState shared by every task of the call and are never cached as
// static.

// VolumePlacement is a volume whose record the plan changes: one used for
// the first time (Exists false: created by its first use) or an existing
// one whose node was chosen by this plan. The proposer guards it with the volume's
// version (0 when new).
type VolumePlacement struct {
	Volume api.Volume
	Exists bool
}

// volumeState is one volume during a Schedule call.
type volumeState struct {
	vol    api.Volume
	exists bool
	cons   []Constraint // where it may be created, while unbound
	err    error        // its constraints do not parse
	owners map[string]bool
	dirty  bool // bound (or created) by this call
}

// volumeSet holds every volume a call's pending tasks mount.
type volumeSet struct {
	byName map[string]*volumeState
	order  []string // names in first-use order, for a deterministic plan
}

func newVolumeSet(vols []api.Volume, live []api.Task) *volumeSet {
	vs := &volumeSet{byName: map[string]*volumeState{}}
	for _, v := range vols {
		st := &volumeState{vol: v, exists: true, owners: map[string]bool{}}
		st.cons, st.err = ParseConstraints(v.Spec.Constraints)
		vs.byName[v.Name] = st
	}
	for i := range live {
		t := &live[i]
		// Pending tasks claim a volume only when this call places them.
		if t.NodeID == "" || t.Status.State == api.TaskPending || t.Status.State.Terminal() {
			continue
		}
		for _, name := range api.VolumeMounts(t.Spec) {
			if st := vs.byName[name]; st != nil {
				st.owners[owner(t)] = true
			}
		}
	}
	return vs
}

// owner is the replica a task stands for: its replacement (same service
// and slot, or same node for a global task) may take the volume over
// while the old task is still stopping.
func owner(t *api.Task) string {
	if t.Slot == 0 {
		return t.ServiceID + "\x00node\x00" + t.NodeID
	}
	return t.ServiceID + "\x00" + strconv.FormatUint(t.Slot, 10)
}

// get returns the state of a volume, making one for a volume that does not
// exist yet: its first use creates it local, single-node and not shared
// (Swarm semantics).
func (vs *volumeSet) get(name, service string) *volumeState {
	if st := vs.byName[name]; st != nil {
		return st
	}
	st := &volumeState{
		vol: api.Volume{Name: name, Spec: api.VolumeSpec{Name: name, Driver: api.LocalDriver, Scope: api.ScopeSingleNode, Access: api.AccessSingleWriter},
			Status: api.VolumeStatus{CreatedBy: service}},
		owners: map[string]bool{},
	}
	vs.byName[name] = st
	return st
}

// shapeKey extends a task's shape by its volumes and, when one of them is
// exclusive, by the replica it stands for: the exclusive filter is built
// for one owner and must not be reused for another slot.
func (vs *volumeSet) shapeKey(t *api.Task) string {
	names := api.VolumeMounts(t.Spec)
	if len(names) == 0 {
		return ""
	}
	key := fmt.Sprintf("\x00%q", names)
	for _, name := range names {
		st := vs.get(name, t.ServiceName)
		if st.vol.SingleNode() && !st.vol.Spec.Shared {
			return key + "\x00" + owner(t)
		}
	}
	return key
}

// filters are the volume rules for a task: each mounted volume's driver
// must run on the node; a single-node volume pins the task to its node (or,
// unbound, to nodes its constraints allow); and one that is not shared
// takes one replica only.
func (vs *volumeSet) filters(t *api.Task) ([]Filter, error) {
	var fs []Filter
	for _, name := range api.VolumeMounts(t.Spec) {
		st := vs.get(name, t.ServiceName)
		if st.err != nil {
			return nil, fmt.Errorf("volume %s: %w", name, st.err)
		}
		if d := st.vol.Spec.Driver; d != api.LocalDriver && d != "" {
			fs = append(fs, volumeDriverFilter{d})
		}
		if !st.vol.SingleNode() {
			continue
		}
		fs = append(fs, volumeNodeFilter{st})
		if !st.vol.Spec.Shared {
			fs = append(fs, volumeExclusiveFilter{st, owner(t)})
		}
	}
	return fs, nil
}

// placed records that t went to node: a single-node volume without a node
// now lives there.
func (vs *volumeSet) placed(t *api.Task, nodeID string) []api.VolumeAttachment {
	var out []api.VolumeAttachment
	for _, name := range api.VolumeMounts(t.Spec) {
		st := vs.byName[name]
		if st.vol.SingleNode() && st.vol.Status.Node == "" {
			st.vol.Status.Node = nodeID
			st.dirty = true
			vs.order = append(vs.order, name)
		}
		st.owners[owner(t)] = true
		out = append(out, st.vol.Attachment())
	}
	return out
}

func (vs *volumeSet) changes() []VolumePlacement {
	out := make([]VolumePlacement, 0, len(vs.order))
	for _, name := range vs.order {
		st := vs.byName[name]
		out = append(out, VolumePlacement{Volume: st.vol, Exists: st.exists})
	}
	return out
}

// volumeDriverFilter keeps tasks on nodes that run the volume's driver.
type volumeDriverFilter struct{ driver string }

func (f volumeDriverFilter) Check(n *NodeInfo) bool {
	return slices.ContainsFunc(n.Node.Status.VolumeDrivers, func(d api.VolumeDriverInfo) bool { return d.Name == f.driver })
}
func (f volumeDriverFilter) Explain(count int) string {
	return fmt.Sprintf("%d do not have volume driver %s", count, f.driver)
}
func (volumeDriverFilter) static() bool { return true }

// volumeNodeFilter keeps a task on the node its single-node volume lives on.
type volumeNodeFilter struct{ st *volumeState }

func (f volumeNodeFilter) Check(n *NodeInfo) bool {
	if node := f.st.vol.Status.Node; node != "" {
		return n.Node.ID == node
	}
	for _, c := range f.st.cons {
		if !c.Matches(n.Node) {
			return false
		}
	}
	return true
}
func (f volumeNodeFilter) Explain(count int) string {
	if f.st.vol.Status.Node != "" {
		return fmt.Sprintf("%d do not hold volume %s", count, f.st.vol.Name)
	}
	return fmt.Sprintf("%d did not match the constraints of volume %s", count, f.st.vol.Name)
}

// volumeExclusiveFilter refuses a second replica on a volume that is not
// shared, wherever it would go.
type volumeExclusiveFilter struct {
	st    *volumeState
	owner string
}

func (f volumeExclusiveFilter) Check(*NodeInfo) bool {
	for o := range f.st.owners {
		if o != f.owner {
			return false
		}
	}
	return true
}
func (f volumeExclusiveFilter) Explain(count int) string {
	return fmt.Sprintf("%d refused: volume %s is in use by another task and not shared", count, f.st.vol.Name)
}

// insertVolumeFilters puts the volume rules after the node's own rules
// (state, availability, pinning, constraints) and before the replica and
// resource limits, so that "do not hold volume" is named before
// "insufficient memory" for a node that fails both.
func insertVolumeFilters(fs, vf []Filter) []Filter {
	if len(vf) == 0 {
		return fs
	}
	i := 0
	for i < len(fs) {
		switch fs[i].(type) {
		case readyFilter, availabilityFilter, pinnedFilter, constraintFilter:
			i++
			continue
		}
		break
	}
	out := make([]Filter, 0, len(fs)+len(vf))
	out = append(out, fs[:i]...)
	out = append(out, vf...)
	return append(out, fs[i:]...)
}
