package orchestrator

import (
	"errors"
	"fmt"
	"maps"
	"sort"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// Promote ends the waiting phase of a canary or blue-green rollout.
// Blue-green flips the weights to 100 for the new version and 0 for every
// other at once (the green set is already up). Canary keeps the weights of
// its last step while Reconcile starts the remaining new replicas next to
// the old ones, and flips them once every new replica is ready: flipping
// here would pour all traffic onto the few canaries, and replacing the old
// tasks one by one would ramp traffic and reset connections. Either way the
// old tasks then stay without traffic for the keep window
// (UpdateConfig.Keep), so that a rollback is a weight flip. A service that
// is not awaiting promotion is returned unchanged.
func Promote(svc api.Service, now time.Time) api.Service {
	if svc.Update == nil || svc.Update.State != api.UpdateAwaitingPromote {
		return svc
	}
	u := *svc.Update
	u.State = api.UpdateUpdating
	u.Message = "promoted at " + now.UTC().Format(time.RFC3339)
	u.StepAt = time.Time{}
	u.Weights = maps.Clone(u.Weights)
	if svc.Spec.Update.Strategy == api.StrategyBlueGreen {
		w := make(map[string]uint32, len(u.Weights))
		for v := range u.Weights {
			w[v] = 0
		}
		w[versionLabel(&svc)] = 100
		u.Weights = w
	}
	svc.Update = &u
	return svc
}

// ErrNotCanary is returned by SetCanaryWeight for a service whose canary is
// not waiting for promotion.
var ErrNotCanary = errors.New("no canary rollout is waiting for promotion")

// SetCanaryWeight moves a waiting canary to weight w (percent of new
// connections to the new version) without a new spec version: only the
// weights change, in one write, so every node switches at once; Reconcile
// then scales both versions' task counts to follow. 100 promotes.
func SetCanaryWeight(svc api.Service, w uint32, now time.Time) (api.Service, error) {
	if svc.Update == nil || svc.Update.State != api.UpdateAwaitingPromote || svc.Spec.Update.Strategy != api.StrategyCanary {
		return svc, ErrNotCanary
	}
	svc.Spec.Update.CanaryWeight = w
	if w >= 100 {
		return Promote(svc, now), nil
	}
	u := *svc.Update
	label := versionLabel(&svc)
	u.Weights = share(u.Weights, label, w)
	u.StepAt = time.Time{}
	u.Message = fmt.Sprintf("canary at %d%% since %s", w, now.UTC().Format(time.RFC3339))
	svc.Update = &u
	return svc, nil
}

// share gives label weight w and splits the rest between the other labels of
// old in proportion to their weights (equally when they all had none).
func share(old map[string]uint32, label string, w uint32) map[string]uint32 {
	var others []string
	total := uint32(0)
	for v, x := range old {
		if v != label {
			others = append(others, v)
			total += x
		}
	}
	sort.Strings(others)
	out := map[string]uint32{label: w}
	rest, given := 100-w, uint32(0)
	for i, v := range others {
		x := rest / uint32(len(others))
		if total > 0 {
			x = rest * old[v] / total
		}
		if i == len(others)-1 {
			x = rest - given
		}
		out[v] = x
		given += x
	}
	if len(others) == 0 {
		out[label] = 100
	}
	return out
}

// ErrNoPreviousSpec is returned by Rollback for a service that was never
// updated (or was already rolled back).
var ErrNoPreviousSpec = errors.New("service has no previous spec to roll back to")

// Rollback reverts the service to its previous spec. The spec version moves
// forward (tasks record the version they were made from, and versions never
// repeat); tasks still running the previous template are kept, because they
// are current again. PreviousSpec is cleared so a second rollback cannot
// ping-pong between the two specs.
//
// While the old version is still deployed next to the new one — a canary or
// blue-green rollout waiting, being promoted, or in its keep window — the
// weights flip back in the same write: all new connections go to the old
// version at once and Reconcile only stops the new tasks. Later, the
// rollback is a rolling update back to the old spec.
func Rollback(svc api.Service, now time.Time, reason string) (api.Service, error) {
	if svc.PreviousSpec == nil {
		return svc, ErrNoPreviousSpec
	}
	var weights map[string]uint32
	if u := svc.Update; u != nil && len(u.Weights) > 0 {
		deployed := u.State == api.UpdateAwaitingPromote || u.State == api.UpdateUpdating ||
			u.State == api.UpdatePaused || u.State == api.UpdateCompleted && now.Before(u.KeepUntil)
		if deployed {
			label := versionLabel(&svc)
			weights = share(u.Weights, label, 0)
			if len(weights) == 1 {
				weights = nil
			}
		}
	}
	svc.Spec = *svc.PreviousSpec
	svc.PreviousSpec = nil
	svc.SpecVersion++
	svc.Update = &api.UpdateStatus{State: api.UpdateRolledBack, Message: reason, StartedAt: now, Weights: weights}
	if weights != nil {
		svc.Update.Message += " (traffic switched back at once)"
	}
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
