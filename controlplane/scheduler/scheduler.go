package scheduler

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/warrenhq/warren/controlplane/api"
)

// Plan is what the leader proposes after a Schedule call: every pending task
// appears exactly once, either placed or with the reason it was not.
type Plan struct {
	Placements []Placement
	Unplaced   []Unplaced
	// Volumes are volumes created or given a node by this plan.
	Volumes []VolumePlacement
}

// Placement assigns a task to a node.
type Placement struct {
	TaskID string
	NodeID string
	// Volumes are the task's volumes as the node must mount them.
	Volumes []api.VolumeAttachment
}

// Unplaced is a task that stays pending, and why, e.g.
// "0/5 nodes available: 3 insufficient memory, 2 did not match constraint node.labels.site==a".
type Unplaced struct {
	TaskID string
	Reason string
}

// Schedule places pending tasks on nodes.
//
// tasks are all non-terminal tasks in the cluster, placed or not; those on a
// node count against its capacity and its spread score. Pending tasks found
// in tasks are ignored there, so the caller may pass the same snapshot
// slice twice. A pending task with NodeID already set (a global task) may
// only go to that node.
//
// Nodes are visited in ID order and pending tasks in (service, slot, ID)
// order, so the plan depends only on the inputs and the state of rnd, which
// breaks ties between equally good nodes.
func Schedule(nodes []api.Node, tasks []api.Task, pending []api.Task, rnd *rand.Rand) Plan {
	return ScheduleVolumes(nodes, tasks, pending, nil, rnd)
}

// ScheduleVolumes is Schedule for a cluster with volumes: tasks mounting a
// single-node volume go to its node, and a volume mounted for the first
// time is created (or bound) where its first task lands.
func ScheduleVolumes(nodes []api.Node, tasks []api.Task, pending []api.Task, volumes []api.Volume, rnd *rand.Rand) Plan {
	vols := newVolumeSet(volumes, tasks)
	infos := make([]*NodeInfo, len(nodes))
	byID := make(map[string]*NodeInfo, len(nodes))
	for i := range nodes {
		infos[i] = &NodeInfo{Node: &nodes[i], ServiceTasks: map[string]int{}}
	}
	sort.SliceStable(infos, func(i, j int) bool { return infos[i].Node.ID < infos[j].Node.ID })
	for _, n := range infos {
		byID[n.Node.ID] = n
	}

	toPlace := make(map[string]bool, len(pending))
	for i := range pending {
		toPlace[pending[i].ID] = true
	}
	for i := range tasks {
		t := &tasks[i]
		if toPlace[t.ID] || t.NodeID == "" || t.Status.State.Terminal() {
			continue
		}
		if n := byID[t.NodeID]; n != nil {
			n.add(t)
		}
	}

	order := make([]*api.Task, len(pending))
	for i := range pending {
		order[i] = &pending[i]
	}
	sort.SliceStable(order, func(i, j int) bool {
		a, b := order[i], order[j]
		if a.ServiceID != b.ServiceID {
			return a.ServiceID < b.ServiceID
		}
		if a.Slot != b.Slot {
			return a.Slot < b.Slot
		}
		return a.ID < b.ID
	})

	// Static filters (node state, availability, pinning, constraints) do
	// not change as tasks are placed, so their verdict is computed once per
	// distinct task shape; per task only reservations and replica limits
	// are re-checked. Spread counts live in slices indexed like infos so the
	// hot loop does no map lookups.
	type shape struct {
		filters, static, dynamic []Filter
		cand                     []int
		err                      error
	}
	shapes := map[string]*shape{}
	counts := map[string][]int32{}
	var plan Plan
	for _, t := range order {
		key := t.ServiceID + "\x00" + t.NodeID + "\x00" + strings.Join(t.Spec.Placement.Constraints, "\x00") +
			fmt.Sprintf("\x00%d\x00%+v", t.Spec.Placement.MaxReplicas, t.Spec.Resources.Reservations) + vols.shapeKey(t) +
			"\x00" + t.Spec.Container.ImageDigest + fmt.Sprint(t.Spec.Container.ImagePlatforms)
		sh := shapes[key]
		if sh == nil {
			sh = &shape{}
			sh.filters, sh.err = Filters(t)
			if sh.err == nil {
				var vf []Filter
				vf, sh.err = vols.filters(t)
				sh.filters = insertVolumeFilters(sh.filters, vf)
			}
			for _, f := range sh.filters {
				if isStatic(f) {
					sh.static = append(sh.static, f)
				} else {
					sh.dynamic = append(sh.dynamic, f)
				}
			}
			for i, n := range infos {
				if passes(n, sh.static) {
					sh.cand = append(sh.cand, i)
				}
			}
			shapes[key] = sh
		}
		if sh.err != nil {
			plan.Unplaced = append(plan.Unplaced, Unplaced{TaskID: t.ID, Reason: "invalid placement: " + sh.err.Error()})
			continue
		}
		svc := counts[t.ServiceID]
		if svc == nil {
			svc = make([]int32, len(infos))
			for i, n := range infos {
				svc[i] = int32(n.ServiceTasks[t.ServiceID])
			}
			counts[t.ServiceID] = svc
		}
		best := pick(infos, sh.cand, sh.dynamic, svc, rnd)
		if best < 0 {
			plan.Unplaced = append(plan.Unplaced, Unplaced{TaskID: t.ID, Reason: explain(infos, sh.filters)})
			continue
		}
		infos[best].add(t)
		svc[best]++
		plan.Placements = append(plan.Placements, Placement{TaskID: t.ID, NodeID: infos[best].Node.ID, Volumes: vols.placed(t, infos[best].Node.ID)})
	}
	plan.Volumes = vols.changes()
	return plan
}

func passes(n *NodeInfo, fs []Filter) bool {
	for _, f := range fs {
		if !f.Check(n) {
			return false
		}
	}
	return true
}

// pick returns the index of the feasible candidate with the fewest tasks of
// the service, then the fewest tasks overall; ties are broken uniformly at
// random (reservoir sampling: one pass, one rnd draw per tie). -1 if none.
func pick(infos []*NodeInfo, cand []int, dynamic []Filter, svc []int32, rnd *rand.Rand) int {
	best, ties := -1, 0
	var bestSvc int32
	var bestAll int
	for _, i := range cand {
		n := infos[i]
		if !passes(n, dynamic) {
			continue
		}
		s, all := svc[i], n.Tasks
		switch {
		case best < 0 || s < bestSvc || s == bestSvc && all < bestAll:
			best, bestSvc, bestAll, ties = i, s, all, 1
		case s == bestSvc && all == bestAll:
			ties++
			if rnd.IntN(ties) == 0 {
				best = i
			}
		}
	}
	return best
}

// explain attributes each node to the first filter that refused it, in
// filter order, and renders the counts.
func explain(infos []*NodeInfo, filters []Filter) string {
	counts := make([]int, len(filters))
	for _, n := range infos {
		for i, f := range filters {
			if !f.Check(n) {
				counts[i]++
				break
			}
		}
	}
	parts := make([]string, 0, len(filters))
	for i, f := range filters {
		if counts[i] > 0 {
			parts = append(parts, f.Explain(counts[i]))
		}
	}
	reason := fmt.Sprintf("0/%d nodes available", len(infos))
	if len(parts) > 0 {
		reason += ": " + strings.Join(parts, ", ")
	}
	return reason
}
