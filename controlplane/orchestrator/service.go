package orchestrator

import (
	"fmt"
	"reflect"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// service reconciles one service: bookkeeping of stopped tasks, drain, the
// failure action of an open rollout, then slot by slot, then the rollout,
// then history.
func (r *reconciler) service(svc api.Service, tasks []*api.Task) {
	orig := svc
	svc.Update = cloneStatus(svc.Update)
	global := svc.Spec.Mode == api.ModeGlobal

	for _, t := range tasks {
		// A task that stopped by itself is no longer wanted as such; its
		// slot decides below whether it is replaced.
		if t.Status.State.Terminal() {
			r.setDesired(t, api.TaskShutdown)
		}
		// Drain moves replicated tasks away; global tasks on a drained
		// node are removed with their slot below.
		if !global && live(t) {
			if n := r.nodes[t.NodeID]; n != nil && n.Spec.Availability == api.AvailabilityDrain {
				r.setDesired(t, api.TaskShutdown)
			}
		}
	}

	r.failureAction(&svc, tasks)

	p := r.plan(&svc, r.slots(&svc, tasks))
	r.advance(&svc, p)

	for _, s := range p.slots {
		r.trimHistory(s)
	}
	if !reflect.DeepEqual(orig, svc) {
		r.res.Services = append(r.res.Services, svc)
	}
}

// failureAction applies the service's FailureAction when a task of the spec
// being rolled out has failed or was rejected.
func (r *reconciler) failureAction(svc *api.Service, tasks []*api.Task) {
	u := svc.Update
	if u == nil || (u.State != api.UpdateUpdating && u.State != api.UpdateAwaitingPromote) {
		return
	}
	action := svc.Spec.Update.FailureAction
	if action == FailureContinue {
		return
	}
	var failed *api.Task
	for _, t := range tasks {
		if t.SpecVersion == svc.SpecVersion && (t.Status.State == api.TaskFailed || t.Status.State == api.TaskRejected) {
			failed = t
			break
		}
	}
	if failed == nil {
		return
	}
	why := fmt.Sprintf("task %s (slot %d, node %s) %s: %s", failed.ID, failed.Slot, failed.NodeID, failed.Status.State, firstNonEmpty(failed.Status.Err, failed.Status.Message))
	if action == FailureRollback {
		if rolled, err := Rollback(*svc, r.now, "rolled back: "+why); err == nil {
			*svc = rolled
			return
		}
		why += "; no previous spec to roll back to"
	}
	u.State = api.UpdatePaused
	u.Message = "update paused: " + why
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return "no reason reported"
}

// rolloutPlan is the outcome of the slot pass: which slots still run only
// the old spec and may be updated now, and how many slots are mid-change.
type rolloutPlan struct {
	slots       []*slot
	outdated    []*slot // only old-spec tasks live, nothing else unfinished
	waiting     bool    // some outdated slot is still settling
	transitions int
	acted       bool // this pass already changed something
	hasCurrent  int  // wanted slots with a live current task
	wanted      int
	oldLabels   map[string]int
}

// plan walks the slots once. Each wanted slot ends in one of three shapes:
// it has a current task (keep the best, stop the old one once the new one is
// ready), it has only old tasks (a candidate for the rollout), or it has
// nothing live (replace, subject to the restart policy).
func (r *reconciler) plan(svc *api.Service, slots []*slot) *rolloutPlan {
	p := &rolloutPlan{slots: slots, oldLabels: map[string]int{}}
	var state api.UpdateState
	if svc.Update != nil {
		state = svc.Update.State
	}
	holdOld := state == api.UpdateAwaitingPromote
	paused := state == api.UpdatePaused
	stopFirst := svc.Spec.Update.Order != OrderStartFirst

	for _, s := range slots {
		lv := s.live()
		if !s.wanted {
			for _, t := range lv {
				r.setDesired(t, api.TaskRemove)
				p.acted = true
			}
			continue
		}
		p.wanted++
		var cur, old []*api.Task
		for _, t := range lv {
			if current(svc, t) {
				cur = append(cur, t)
			} else {
				old = append(old, t)
			}
		}
		switch {
		case len(cur) > 0:
			keep := best(cur)
			for _, t := range cur {
				if t != keep {
					r.setDesired(t, api.TaskShutdown)
					p.acted = true
				}
			}
			if ready(keep) && !holdOld {
				for _, t := range old {
					r.setDesired(t, api.TaskShutdown)
					p.acted = true
				}
			}
			for _, t := range old {
				if live(t) {
					p.oldLabels[t.Version]++
				}
			}
			p.hasCurrent++
			if !ready(keep) || s.unfinished() > 1 {
				p.transitions++
			}
		case len(old) > 0:
			keep := best(old)
			for _, t := range old {
				if t != keep {
					r.setDesired(t, api.TaskShutdown)
					p.acted = true
				}
			}
			p.oldLabels[keep.Version]++
			if s.unfinished() > 1 {
				p.transitions++
				p.waiting = true
			} else {
				p.outdated = append(p.outdated, s)
			}
		default:
			r.refill(svc, s, p, holdOld || paused, stopFirst)
		}
	}
	return p
}

// refill decides whether an empty wanted slot gets a new task.
func (r *reconciler) refill(svc *api.Service, s *slot, p *rolloutPlan, keepOld, stopFirst bool) {
	if s.unfinished() > 0 {
		p.transitions++
		// Stop-first: the old-spec task must be gone before its successor
		// starts, so the node never holds both.
		for _, t := range s.tasks {
			if stopFirst && !t.Status.State.Terminal() && !current(svc, t) {
				return
			}
		}
	}
	if !s.create {
		return
	}
	var latest *api.Task
	if len(s.tasks) > 0 {
		latest = s.tasks[0]
	}
	var from *api.Task
	if keepOld && latest != nil && !current(svc, latest) {
		from = latest
	}
	if latest != nil && (from != nil || current(svc, latest)) && !restartAllowed(s, latest) {
		// The agent gave up and the policy says the cluster should too.
		// A new spec (latest not current) gets a fresh start instead.
		return
	}
	r.newTask(svc, s.key, from)
	p.acted = true
	p.transitions++
}

// restartAllowed applies the restart policy the latest task ran with. The
// agent already restarted it in place; Status.Restarts says how often, so the
// attempts of a slot are summed over its failed tasks of the same spec
// version (bounded by the history kept).
func restartAllowed(s *slot, latest *api.Task) bool {
	pol := latest.Spec.Restart
	switch latest.Status.State {
	case api.TaskFailed:
		if pol.Condition == api.RestartNone {
			return false
		}
		if pol.MaxAttempts > 0 {
			var attempts uint64
			for _, t := range s.tasks {
				if t.SpecVersion == latest.SpecVersion && t.Status.State == api.TaskFailed {
					attempts += 1 + t.Status.Restarts
				}
			}
			return attempts < pol.MaxAttempts
		}
		return true
	case api.TaskComplete:
		return pol.Condition == api.RestartAny || pol.Condition == ""
	default:
		// Shut down, orphaned, rejected or drained: not the task's fault.
		return true
	}
}

// advance moves the rollout: it opens one when slots run an old spec, starts
// the next batch within parallelism and delay, and closes it when nothing is
// left to change.
func (r *reconciler) advance(svc *api.Service, p *rolloutPlan) {
	u := svc.Update
	pending := len(p.outdated) > 0 || p.waiting
	if pending && (u == nil || u.State == "" || u.State == api.UpdateCompleted || u.State == api.UpdateRolledBack && !u.CompletedAt.IsZero()) {
		u = &api.UpdateStatus{State: api.UpdateUpdating, StartedAt: r.now}
		switch svc.Spec.Update.Strategy {
		case api.StrategyCanary:
			w := svc.Spec.Update.CanaryWeight
			if w == 0 {
				w = DefaultCanaryWeight
			}
			u.State, u.Weights = api.UpdateAwaitingPromote, rolloutWeights(versionLabel(svc), min(w, 100), p.oldLabels)
		case api.StrategyBlueGreen:
			u.State, u.Weights = api.UpdateAwaitingPromote, rolloutWeights(versionLabel(svc), 0, p.oldLabels)
		}
		svc.Update = u
	}
	if u == nil {
		return
	}
	cfg := svc.Spec.Update
	switch u.State {
	case api.UpdateAwaitingPromote:
		want := p.wanted
		if cfg.Strategy == api.StrategyCanary {
			w := uint64(cfg.CanaryWeight)
			if w == 0 {
				w = DefaultCanaryWeight
			}
			want = int((uint64(want)*min(w, 100) + 99) / 100)
		}
		for _, s := range p.outdated {
			if p.hasCurrent >= want {
				break
			}
			r.newTask(svc, s.key, nil)
			p.hasCurrent++
			p.acted = true
		}
	case api.UpdateUpdating, api.UpdateRolledBack:
		if u.State == api.UpdateRolledBack && !u.CompletedAt.IsZero() {
			return
		}
		budget := len(p.outdated)
		startFirst := cfg.Order == OrderStartFirst
		promoted := u.State == api.UpdateUpdating && (cfg.Strategy == api.StrategyCanary || cfg.Strategy == api.StrategyBlueGreen)
		if promoted {
			// After promotion the new version has proven itself; replace
			// the rest at once, keeping each old task until its successor
			// is ready.
			startFirst = true
		} else {
			if cfg.Parallelism > 0 {
				budget = int(cfg.Parallelism) - p.transitions
			}
			if at := lastBatch(svc, p).Add(cfg.Delay.D()); cfg.Delay > 0 && len(p.outdated) > 0 && r.now.Before(at) {
				r.wake(at)
				budget = 0
			}
		}
		for i := 0; i < budget && i < len(p.outdated); i++ {
			s := p.outdated[i]
			if startFirst {
				r.newTask(svc, s.key, nil)
			} else {
				for _, t := range s.live() {
					r.setDesired(t, api.TaskShutdown)
				}
			}
			p.acted = true
		}
		if !pending && !p.acted && p.transitions == 0 {
			if u.State == api.UpdateUpdating {
				u.State = api.UpdateCompleted
				u.Message = "update completed"
			}
			u.CompletedAt = r.now
			u.Weights = nil
		}
	}
}

// lastBatch is when the previous batch settled: the latest creation or
// status change among live tasks of the current spec. The rollout delay
// counts from there. (UpdateStatus has no field for it; deriving it from the
// tasks also survives a leader change.)
func lastBatch(svc *api.Service, p *rolloutPlan) (last time.Time) {
	for _, s := range p.slots {
		for _, t := range s.tasks {
			if !live(t) || t.SpecVersion != svc.SpecVersion {
				continue
			}
			if t.Meta.CreatedAt.After(last) {
				last = t.Meta.CreatedAt
			}
			if t.Status.Timestamp.After(last) {
				last = t.Status.Timestamp
			}
		}
	}
	return last
}

// trimHistory deletes terminal tasks beyond HistoryLimit per slot, and
// terminal tasks that were removed on purpose (scale down, global node left).
func (r *reconciler) trimHistory(s *slot) {
	kept := 0
	for _, t := range s.tasks {
		if !t.Status.State.Terminal() {
			continue
		}
		if t.DesiredState == api.TaskRemove || kept >= HistoryLimit {
			r.deleted[t.ID] = true
			continue
		}
		kept++
	}
}
