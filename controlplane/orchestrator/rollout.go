package orchestrator

import (
	"errors"
	"maps"
	"sort"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// Promote ends the waiting phase of a canary or blue-green rollout. Blue-green
// flips the weights to 100 for the new version and 0 for every other at
// once, then Reconcile retires the old tasks. Canary drops the weights, so
// traffic follows ready backends while Reconcile starts the remaining new
// replicas and stops each old one as its successor becomes ready; flipping
// to 100/0 here would pour all traffic onto the few canaries. A service that
// is not awaiting promotion is returned unchanged.
func Promote(svc api.Service, now time.Time) api.Service {
	if svc.Update == nil || svc.Update.State != api.UpdateAwaitingPromote {
		return svc
	}
	u := *svc.Update
	u.State = api.UpdateUpdating
	u.Message = "promoted at " + now.UTC().Format(time.RFC3339)
	if svc.Spec.Update.Strategy == api.StrategyBlueGreen {
		w := make(map[string]uint32, len(u.Weights))
		for v := range u.Weights {
			w[v] = 0
		}
		w[versionLabel(&svc)] = 100
		u.Weights = w
	} else {
		u.Weights = nil
	}
	svc.Update = &u
	return svc
}

// ErrNoPreviousSpec is returned by Rollback for a service that was never
// updated (or was already rolled back).
var ErrNoPreviousSpec = errors.New("service has no previous spec to roll back to")

// Rollback reverts the service to its previous spec. The spec version moves
// forward (tasks record the version they were made from, and versions never
// repeat); tasks still running the previous template are kept, because they
// are current again. PreviousSpec is cleared so a second rollback cannot
// ping-pong between the two specs.
func Rollback(svc api.Service, now time.Time, reason string) (api.Service, error) {
	if svc.PreviousSpec == nil {
		return svc, ErrNoPreviousSpec
	}
	svc.Spec = *svc.PreviousSpec
	svc.PreviousSpec = nil
	svc.SpecVersion++
	svc.Update = &api.UpdateStatus{State: api.UpdateRolledBack, Message: reason, StartedAt: now}
	return svc, nil
}

// rolloutWeights splits traffic at the start of a canary or blue-green
// rollout: the new version gets newWeight, the old versions share the rest in
// proportion to their live tasks.
func rolloutWeights(newLabel string, newWeight uint32, old map[string]int) map[string]uint32 {
	w := map[string]uint32{}
	labels := make([]string, 0, len(old))
	total := 0
	for l, n := range old {
		if l == newLabel {
			continue
		}
		labels = append(labels, l)
		total += n
	}
	sort.Strings(labels)
	rest := 100 - newWeight
	given := uint32(0)
	for i, l := range labels {
		share := rest * uint32(old[l]) / uint32(total)
		if i == len(labels)-1 {
			share = rest - given
		}
		w[l] = share
		given += share
	}
	w[newLabel] = newWeight
	if len(labels) == 0 {
		w[newLabel] = 100
	}
	return w
}

func cloneStatus(u *api.UpdateStatus) *api.UpdateStatus {
	if u == nil {
		return nil
	}
	c := *u
	c.Weights = maps.Clone(u.Weights)
	return &c
}
