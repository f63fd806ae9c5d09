package orchestrator

import (
	"fmt"
	"reflect"
	"sort"

	"github.com/warrenhq/warren/controlplane/api"
)

// live tasks count towards a slot: the system still wants them to run and
// they have not stopped.
func live(t *api.Task) bool {
	return t.DesiredState.Before(api.TaskComplete) && !t.Status.State.Terminal()
}

// ready tasks can take traffic, so a start-first update may stop the task
// they replace.
func ready(t *api.Task) bool {
	if t.Status.State != api.TaskRunning {
		return false
	}
	return t.Status.Health == api.HealthHealthy || t.Status.Health == api.HealthNone && t.Spec.Health == nil
}

// neverPlaced tasks hold nothing on any node and can be deleted outright
// once unwanted.
func neverPlaced(t *api.Task) bool {
	return t.NodeID == "" && t.Status.State.Before(api.TaskAssigned)
}

// versionLabel is the traffic-splitting label of the service's current spec.
func versionLabel(svc *api.Service) string {
	if svc.Spec.Version != "" {
		return svc.Spec.Version
	}
	return fmt.Sprintf("v%d", svc.SpecVersion)
}

// current reports whether t runs what the service asks for now. A spec change
// that leaves the task template alone (scaling, a new update config) bumps
// SpecVersion but must not replace every task, so an equal template counts
// as current unless the user pinned a different version label. Rollback
// relies on this too: the reverted spec equals the old tasks' spec.
func current(svc *api.Service, t *api.Task) bool {
	if t.SpecVersion == svc.SpecVersion {
		return true
	}
	if svc.Spec.Version != "" && t.Version != svc.Spec.Version {
		return false
	}
	return reflect.DeepEqual(t.Spec, svc.Spec.Task)
}

// newer orders tasks newest first: creation time, then the last status
// change, then ID so the order is total.
func newer(a, b *api.Task) bool {
	if !a.Meta.CreatedAt.Equal(b.Meta.CreatedAt) {
		return a.Meta.CreatedAt.After(b.Meta.CreatedAt)
	}
	if !a.Status.Timestamp.Equal(b.Status.Timestamp) {
		return a.Status.Timestamp.After(b.Status.Timestamp)
	}
	return a.ID > b.ID
}

// best picks the task to keep among duplicates: ready beats running beats
// anything earlier, then the newest.
func best(ts []*api.Task) *api.Task {
	rank := func(t *api.Task) int {
		switch {
		case ready(t):
			return 2
		case t.Status.State == api.TaskRunning:
			return 1
		}
		return 0
	}
	var b *api.Task
	for _, t := range ts {
		if b == nil || rank(t) > rank(b) || rank(t) == rank(b) && newer(t, b) {
			b = t
		}
	}
	return b
}

func sortNewest(ts []*api.Task) {
	sort.SliceStable(ts, func(i, j int) bool { return newer(ts[i], ts[j]) })
}
