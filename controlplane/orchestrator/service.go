package orchestrator

import (
	"fmt"
	"maps"
	"reflect"
	"sort"
	"strconv"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// service reconciles one service: bookkeeping of stopped tasks, drain, the
// failure action of an open rollout, unhealthy tasks, then slot by slot,
// then the rollout, then the status and history.
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
	r.analyze(&svc, tasks)
	r.heal(&svc, tasks)

	p := r.plan(&svc, r.slots(&svc, tasks))
	r.advance(&svc, p)
	st := r.status(&svc, p)

	for _, s := range p.slots {
		r.trimHistory(s)
	}
	svc.Status = orig.Status
	switch {
	case !reflect.DeepEqual(orig, svc):
		svc.Status = st
		r.res.Services = append(r.res.Services, svc)
	case !reflect.DeepEqual(orig.Status, st):
		svc.Status = st
		r.res.Statuses = append(r.res.Statuses, svc)
	}
}

// rolloutOpen reports whether tasks of the current spec are being rolled out
// and judged by the failure action.
func rolloutOpen(u *api.UpdateStatus) bool {
	return u != nil && (u.State == api.UpdateUpdating || u.State == api.UpdateAwaitingPromote)
}

// monitor is how long a new task may take to become ready: the configured
// window, else what its health check needs to pass at the latest.
func monitor(svc *api.Service) time.Duration {
	if m := svc.Spec.Update.Monitor.D(); m > 0 {
		return m
	}
	h := svc.Spec.Task.Health
	if h == nil {
		return 0
	}
	retries := max(h.Retries, 1)
	return h.StartPeriod.D() + time.Duration(retries)*(h.Interval.D()+h.Timeout.D())
}

// failure says why a task of the spec being rolled out counts as failed:
// it stopped with an error or was refused, its health check failed, or it
// did not become ready within the monitor window after it started running.
// At the moment the window ends the leader is woken.
func (r *reconciler) failure(t *api.Task, window time.Duration) string {
	switch {
	case t.Status.State == api.TaskFailed || t.Status.State == api.TaskRejected:
		return fmt.Sprintf("%s: %s", t.Status.State, firstNonEmpty(t.Status.Err, t.Status.Message))
	case !live(t) || t.Status.State != api.TaskRunning || ready(t):
		return ""
	case t.Status.Health == api.HealthUnhealthy:
		why := "its health check failed"
		if t.Status.Err != "" {
			why = t.Status.Err
		}
		return "unhealthy: " + why
	case window > 0:
		// The agent stamps each status change, so while the check has not
		// passed the stamp is when the task started running. Only a node
		// heard from since the window ended can say the check still has
		// not passed; a silent one may have a report on the way, or be
		// gone, which node liveness decides.
		deadline := t.Status.Timestamp.Add(window)
		if r.now.Before(deadline) {
			r.wake(deadline)
			return ""
		}
		if n := r.nodes[t.NodeID]; n != nil && !n.Status.Heartbeat.Before(deadline) {
			return fmt.Sprintf("not healthy within the update monitor (%s)", window)
		}
	}
	return ""
}

// failureAction applies the service's FailureAction when more tasks of the
// spec being rolled out failed (see failure) than MaxFailureRatio allows. It
// records the failed tasks (r.failed): their slots no longer hold up the
// rollout, so a failure under the ratio (or with continue) does not stall it.
func (r *reconciler) failureAction(svc *api.Service, tasks []*api.Task) {
	u := svc.Update
	r.failed = nil
	if !rolloutOpen(u) {
		return
	}
	window := monitor(svc)
	failed := map[string]bool{}
	slots := map[slotKey]bool{}
	var first *api.Task
	var why string
	for _, t := range tasks {
		if t.SpecVersion != svc.SpecVersion {
			continue
		}
		if reason := r.failure(t, window); reason != "" {
			failed[t.ID] = true
			k := slotKey{n: t.Slot}
			if svc.Spec.Mode == api.ModeGlobal {
				k = slotKey{node: t.NodeID}
			}
			slots[k] = true
			if first == nil {
				first, why = t, reason
			}
		}
	}
	r.failed = failed
	action := svc.Spec.Update.FailureAction
	if first == nil || action == FailureContinue {
		return
	}
	want := int(svc.Spec.Replicas)
	if svc.Spec.Mode == api.ModeGlobal {
		want = len(r.nodes)
	}
	if float64(len(slots)) <= svc.Spec.Update.MaxFailureRatio*float64(want) {
		return
	}
	why = fmt.Sprintf("task %s (slot %d, node %s) %s", first.ID, first.Slot, first.NodeID, why)
	if len(slots) > 1 {
		why += fmt.Sprintf(" (%d tasks failed, max failure ratio %g)", len(slots), svc.Spec.Update.MaxFailureRatio)
	}
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

// heal replaces tasks whose health check failed its retries, as Swarm does,
// unless the service opts out. Tasks of a spec being rolled out are left to
// the failure action, which may want to keep them for inspection.
func (r *reconciler) heal(svc *api.Service, tasks []*api.Task) {
	judged := rolloutOpen(svc.Update) || svc.Update != nil && svc.Update.State == api.UpdatePaused
	for _, t := range tasks {
		// PID 0: the process exited and the node is restarting it in place
		// (its restart policy's business); it reports unhealthy only to leave
		// the service tables meanwhile.
		if !live(t) || t.Status.State != api.TaskRunning || t.Status.Health != api.HealthUnhealthy ||
			t.Status.PID == 0 || t.Spec.Health == nil || t.Spec.Health.KeepUnhealthy {
			continue
		}
		if judged && t.SpecVersion == svc.SpecVersion && svc.Spec.Update.FailureAction != FailureContinue {
			continue
		}
		r.setDesired(t, api.TaskShutdown)
		t.StopReason = "replaced: unhealthy after " + strconv.FormatUint(max(t.Spec.Health.Retries, 1), 10) + " failed health checks"
	}
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
	held        []*slot // a ready current task next to a live old one kept on purpose
	waiting     bool    // some outdated slot is still settling
	transitions int
	acted       bool // this pass already changed something
	hasCurrent  int  // wanted slots with a live current task
	wanted      int
	oldLabels   map[string]int
}

// holdsOld reports whether old-version tasks stay next to their ready
// successors: while a canary or blue-green rollout waits for promotion,
// while a promoted one starts the rest of the new version (traffic flips
// only once all of it is ready), and during the keep window after.
func (r *reconciler) holdsOld(svc *api.Service) bool {
	u := svc.Update
	if u == nil {
		return false
	}
	switch {
	case u.State == api.UpdateAwaitingPromote:
		return true
	case u.State == api.UpdateUpdating && twoVersions(svc):
		return true
	case u.State == api.UpdateCompleted && !u.KeepUntil.IsZero():
		return r.now.Before(u.KeepUntil)
	}
	return false
}

// twoVersions: canary and blue-green run both versions side by side.
func twoVersions(svc *api.Service) bool {
	st := svc.Spec.Update.Strategy
	return st == api.StrategyCanary || st == api.StrategyBlueGreen
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
	holdOld := r.holdsOld(svc)
	paused := state == api.UpdatePaused
	stopFirst := svc.Spec.Update.Order != OrderStartFirst

	for _, s := range slots {
		lv := s.live()
		if s.away {
			continue
		}
		if !s.wanted {
			for _, t := range s.tasks {
				if live(t) {
					r.setDesired(t, api.TaskRemove)
					p.acted = true
				}
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
			settled := !r.unsettled(cur)
			if !settled {
				cur = r.dropUnplaced(cur)
			}
			keep := keeper(svc, cur)
			for _, t := range cur {
				if t != keep && settled {
					r.setDesired(t, api.TaskShutdown)
					t.StopReason = stopReason(svc, keep, cur)
					p.acted = true
				}
			}
			if settled {
				r.settleRejoin(cur)
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
			if ready(keep) && holdOld && len(old) > 0 {
				p.held = append(p.held, s)
			}
			p.hasCurrent++
			// Old tasks held on purpose are not a transition; tasks still
			// stopping are. A new task that failed the rollout does not
			// hold it up: the failure action has judged it.
			stopping := s.unfinished() - len(s.live())
			if !ready(keep) && !r.failed[keep.ID] || stopping > 0 || !holdOld && len(old) > 0 {
				p.transitions++
			}
		case len(old) > 0:
			keep := keeper(svc, old)
			settled := !r.unsettled(old)
			for _, t := range old {
				if t != keep && settled {
					r.setDesired(t, api.TaskShutdown)
					t.StopReason = stopReason(svc, keep, old)
					p.acted = true
				}
			}
			if settled {
				r.settleRejoin(old)
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

// canaryWeight is the new version's share while a canary waits: the weight
// of its current step, else the configured one.
func canaryWeight(svc *api.Service) uint64 {
	if u := svc.Update; u != nil {
		if w, ok := u.Weights[versionLabel(svc)]; ok && u.State == api.UpdateAwaitingPromote {
			return uint64(min(w, 100))
		}
	}
	w := svc.Spec.Update.CanaryWeight
	if w == 0 {
		w = DefaultCanaryWeight
	}
	return uint64(min(w, 100))
}

// canaryCounts is how many slots each version fills at canary weight w of
// n: the new version enough for its share (rounded up), the old version the
// rest of the share it keeps (rounded up too), so neither version is ever
// left without a task while it has weight.
func canaryCounts(n int, w uint64) (newWant, oldWant int) {
	newWant = int((uint64(n)*w + 99) / 100)
	oldWant = n - int(uint64(n)*w/100)
	return newWant, oldWant
}

func keepFor(svc *api.Service) time.Duration {
	if k := svc.Spec.Update.Keep.D(); k > 0 {
		return k
	}
	return DefaultKeep
}

// advance moves the rollout: it opens one when slots run an old spec, starts
// the next batch within parallelism and delay, and closes it when nothing is
// left to change.
func (r *reconciler) advance(svc *api.Service, p *rolloutPlan) {
	u := svc.Update
	pending := len(p.outdated) > 0 || p.waiting
	keepWindow := u != nil && u.State == api.UpdateCompleted && !u.KeepUntil.IsZero()
	if pending && !keepWindow && (u == nil || u.State == "" || u.State == api.UpdateCompleted || u.State == api.UpdateRolledBack && !u.CompletedAt.IsZero()) {
		u = &api.UpdateStatus{State: api.UpdateUpdating, StartedAt: r.now}
		switch svc.Spec.Update.Strategy {
		case api.StrategyCanary:
			u.State, u.Weights = api.UpdateAwaitingPromote, rolloutWeights(versionLabel(svc), uint32(canaryWeight(svc)), p.oldLabels)
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
		oldWant := p.wanted
		if cfg.Strategy == api.StrategyCanary {
			want, oldWant = canaryCounts(p.wanted, canaryWeight(svc))
		}
		for _, s := range p.outdated {
			if p.hasCurrent >= want {
				break
			}
			r.newTask(svc, s.key, nil)
			p.hasCurrent++
			p.acted = true
		}
		// The old version scales down as the canary's share grows: an old
		// task beside a ready canary stops while more old tasks live than
		// its share needs.
		oldLive := 0
		for _, n := range p.oldLabels {
			oldLive += n
		}
		for _, s := range p.held {
			if oldLive <= oldWant {
				break
			}
			for _, t := range s.live() {
				if !current(svc, t) {
					r.setDesired(t, api.TaskShutdown)
				}
			}
			oldLive--
			p.acted = true
		}
		r.rebalanceOld(svc)
		r.canaryStep(svc, p, want)
	case api.UpdateCompleted:
		if !keepWindow {
			return
		}
		// A new task lost during the keep window is replaced next to the
		// old one, which keeps its place until the window ends.
		for _, s := range p.outdated {
			r.newTask(svc, s.key, nil)
			p.acted = true
		}
		if r.now.Before(u.KeepUntil) {
			r.wake(u.KeepUntil)
			return
		}
		// The window is over: plan has already stopped the old tasks (they
		// get no slots once asked to stop, so the weights can go too).
		u.KeepUntil = time.Time{}
		u.Weights = nil
		u.Message = "update completed"
	case api.UpdateUpdating, api.UpdateRolledBack:
		if u.State == api.UpdateRolledBack && !u.CompletedAt.IsZero() {
			return
		}
		budget := len(p.outdated)
		startFirst := cfg.Order == OrderStartFirst
		promoted := u.State == api.UpdateUpdating && twoVersions(svc)
		if promoted {
			// After promotion the new version has proven itself; start the
			// rest at once next to the old tasks, which keep their traffic
			// until every new task is ready.
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
		if promoted {
			if !pending && !p.acted && p.transitions == 0 {
				r.flip(svc, p)
			}
			return
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

// rebalanceOld splits the old version's share between the old labels that
// still have live tasks, in proportion to them. Old tasks can carry several
// labels (a rollback's replacements take the rollback's label); a label whose
// last task was scaled down would otherwise keep a weight that the
// dataplane drops with it, which hands its share to the new version.
func (r *reconciler) rebalanceOld(svc *api.Service) {
	u := svc.Update
	label := versionLabel(svc)
	old := map[string]int{}
	for _, t := range r.tasks {
		if t.ServiceID == svc.ID && live(t) && !current(svc, t) {
			old[t.Version]++
		}
	}
	if len(old) == 0 {
		return
	}
	w := rolloutWeights(label, u.Weights[label], old)
	for v := range u.Weights {
		if _, ok := w[v]; !ok {
			w[v] = 0
		}
	}
	if !maps.Equal(w, u.Weights) {
		u.Weights = w
	}
}

// flip ends a promotion once every slot has a ready task of the new
// version: all new connections go to it in one write, and the old tasks
// stay, without traffic, for the keep window.
func (r *reconciler) flip(svc *api.Service, p *rolloutPlan) {
	u := svc.Update
	label := versionLabel(svc)
	w := map[string]uint32{label: 100}
	for v := range u.Weights {
		if v != label {
			w[v] = 0
		}
	}
	for v := range p.oldLabels {
		if v != label {
			w[v] = 0
		}
	}
	u.State = api.UpdateCompleted
	u.CompletedAt = r.now
	if len(w) == 1 {
		u.Weights = nil
		u.Message = "update completed"
		return
	}
	u.Weights = w
	u.KeepUntil = r.now.Add(keepFor(svc))
	u.Message = "promoted; the previous version is kept without traffic until " + u.KeepUntil.UTC().Format(time.RFC3339) + " so that a rollback is instant"
	r.wake(u.KeepUntil)
}

// canaryStep moves an automatic canary (UpdateConfig.CanarySteps) to its
// next weight CanaryInterval after the current step's tasks are all ready.
func (r *reconciler) canaryStep(svc *api.Service, p *rolloutPlan, want int) {
	cfg, u := svc.Spec.Update, svc.Update
	if cfg.Strategy != api.StrategyCanary || len(cfg.CanarySteps) == 0 {
		return
	}
	readyNew := 0
	for _, s := range p.slots {
		if !s.wanted {
			continue
		}
		for _, t := range s.live() {
			if current(svc, t) && ready(t) {
				readyNew++
				break
			}
		}
	}
	if p.acted || readyNew < want {
		return
	}
	if u.StepAt.IsZero() {
		u.StepAt = r.now.Add(cfg.CanaryInterval.D())
		r.wake(u.StepAt)
		return
	}
	if r.now.Before(u.StepAt) {
		r.wake(u.StepAt)
		return
	}
	// With analysis on, a step needs a verdict: moving on with too few
	// connections to judge would promote an untested canary.
	if r.verdict != nil && !r.verdict.Judged {
		u.Message = "canary analysis: waiting for enough connections to the canary before the next step"
		return
	}
	w := canaryWeight(svc)
	next := uint64(100)
	for _, st := range cfg.CanarySteps {
		if uint64(st) > w {
			next = min(uint64(st), 100)
			break
		}
	}
	var stepped api.Service
	if next >= 100 {
		stepped = Promote(*svc, r.now)
	} else {
		stepped, _ = SetCanaryWeight(*svc, uint32(next), r.now)
		// The spec stays as the operator wrote it; the step lives in the
		// rollout status.
		stepped.Spec = svc.Spec
	}
	*svc = stepped
	p.acted = true
}

// status is the service's Status after this pass.
func (r *reconciler) status(svc *api.Service, p *rolloutPlan) *api.ServiceStatus {
	st := &api.ServiceStatus{ObservedGeneration: svc.Generation, Desired: p.wanted}
	u := svc.Update
	label := versionLabel(svc)
	type counts struct{ ready, live int }
	byVersion := map[string]*counts{}
	readyCurrent, stopping, oldLive := 0, 0, 0
	for _, s := range p.slots {
		for _, t := range s.tasks {
			if !t.Status.State.Terminal() && !live(t) {
				stopping++
			}
		}
		if !s.wanted {
			continue
		}
		slotReady, curReady := false, false
		for _, t := range s.live() {
			v := t.Version
			if current(svc, t) {
				v = label
			} else {
				oldLive++
			}
			c := byVersion[v]
			if c == nil {
				c = &counts{}
				byVersion[v] = c
			}
			c.live++
			// A task on a down node still fills its slot within the
			// disconnect grace, but takes no traffic: nobody can reach it.
			if ready(t) && !r.away(t) {
				c.ready++
				slotReady = true
				curReady = curReady || current(svc, t)
			}
		}
		if slotReady {
			st.Ready++
		}
		if curReady {
			readyCurrent++
		}
	}
	var state api.UpdateState
	if u != nil {
		state = u.State
	}
	newWant, oldWant := p.wanted, 0
	switch {
	case state == api.UpdateAwaitingPromote && svc.Spec.Update.Strategy == api.StrategyCanary:
		newWant, oldWant = canaryCounts(p.wanted, canaryWeight(svc))
	case state == api.UpdateAwaitingPromote:
		oldWant = p.wanted
	}
	quiet := !p.acted && stopping == 0 && !createdFor(r.res.Create, svc.ID)
	switch state {
	case api.UpdateAwaitingPromote:
		newReady := 0
		if c := byVersion[label]; c != nil {
			newReady = c.ready
		}
		st.Converged = quiet && newReady >= newWant && oldLive <= oldWant
	case api.UpdateUpdating, api.UpdatePaused:
	case api.UpdateRolledBack:
		st.Converged = !u.CompletedAt.IsZero() && quiet && readyCurrent == p.wanted && oldLive == 0
	default:
		held := u != nil && !u.KeepUntil.IsZero() && state == api.UpdateCompleted
		st.Converged = quiet && readyCurrent == p.wanted && (oldLive == 0 || held)
	}
	if len(byVersion) > 1 || u != nil && len(u.Weights) > 0 {
		labels := make([]string, 0, len(byVersion))
		for v := range byVersion {
			labels = append(labels, v)
		}
		if u != nil {
			for v := range u.Weights {
				if byVersion[v] == nil {
					labels = append(labels, v)
				}
			}
		}
		sort.Slice(labels, func(i, j int) bool {
			if (labels[i] == label) != (labels[j] == label) {
				return labels[i] == label
			}
			return labels[i] < labels[j]
		})
		for _, v := range labels {
			vs := api.VersionStatus{Version: v, Current: v == label}
			if c := byVersion[v]; c != nil {
				vs.Ready = c.ready
			}
			if vs.Current {
				vs.Desired = newWant
			} else if len(labels) == 2 {
				vs.Desired = oldWant
			}
			if u != nil && u.Weights != nil {
				w := u.Weights[v]
				vs.Weight = &w
			}
			st.Versions = append(st.Versions, vs)
		}
	}
	return st
}

func createdFor(ts []api.Task, svcID string) bool {
	for _, t := range ts {
		if t.ServiceID == svcID {
			return true
		}
	}
	return false
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
