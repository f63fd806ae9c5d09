package agent

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/api"
)

// The node's side of a cut. The agent knows when a manager last answered;
// once none has for cutAfter heartbeats (at least floor) it counts itself cut off, and from then on it
// enforces the services' disconnect stop-after by itself (the managers
// cannot reach it to do so). When a manager answers again it waits a short
// settle window for the managers' decisions about its tasks (the leader
// plans on the node's return, and a stop waits for the drain gate), then
// logs one line with what the sync did and counts it.

const (
	// cutAfter, in heartbeats: a node is cut off once no manager answered
	// this many heartbeat intervals. One or two late answers on a lossy
	// link are not a cut.
	cutAfter = 3
	// settleAfter, in heartbeats: how long after a reconnect the managers'
	// decisions are awaited before the sync is summed up.
	settleAfter = 3
	// heardEvery bounds how often the time of the last answer is written
	// to the cache: after a reboot while cut off the cut is taken to have
	// begun at most this much earlier than it did (stop-after then stops a
	// task early, never late).
	heardEvery = 10 * time.Second
	// floor is the least silence that is a cut, and the least settle
	// window, however short the heartbeat: a lossy link delays an answer by
	// a few TCP retransmissions (seconds), and the managers' decisions on a
	// return take a plan and a drain.
	floor = 5 * time.Second
)

func (a *Agent) cutAfter() time.Duration { return max(cutAfter*a.cfg.Heartbeat, floor) }

func (a *Agent) settle() time.Duration { return max(settleAfter*a.cfg.Heartbeat, floor) }

// link is the agent's account of its contact with the managers. Guarded by
// Agent.mu.
type link struct {
	heard     time.Time     // last answer from any manager
	saved     time.Time     // heard as last written to the cache
	cutSince  time.Time     // zero while in touch; else the last answer before the cut
	lastCut   time.Duration // the previous cut's length
	resync    *resync       // a reconnect whose sync is not summed up yet
	stopped   map[string]bool
	outcomes  map[string]uint64
	cutLogged bool
}

// resync is a reconnect being settled.
type resync struct {
	after  time.Duration // how long the node was cut off
	at     time.Time     // when to sum it up
	before []api.Task    // the tasks the node ran when it reconnected
	latest []api.Task    // the tasks in the latest assignments since
}

// Outcomes of a sync, the label values of warren_node_reconciliations_total.
const (
	OutcomeKept    = "kept"
	OutcomeStopped = "stopped"
	OutcomeUpdated = "updated"
)

// SyncSummary is what one reconnect did to the node's tasks.
type SyncSummary struct {
	Kept, Stopped, Updated int
}

// summarize compares the tasks a node ran when it reconnected with those
// the managers want now: kept runs on, stopped no longer runs (asked to
// stop, or no longer assigned), updated is new to the node (a newer spec,
// a task placed here).
func summarize(before, after []api.Task) SyncSummary {
	var s SyncSummary
	wanted := map[string]bool{}
	for _, t := range after {
		if !t.DesiredState.Before(api.TaskShutdown) {
			continue
		}
		wanted[t.ID] = true
	}
	had := map[string]bool{}
	for _, t := range before {
		if !t.DesiredState.Before(api.TaskShutdown) {
			continue
		}
		had[t.ID] = true
		if wanted[t.ID] {
			s.Kept++
		} else {
			s.Stopped++
		}
	}
	for id := range wanted {
		if !had[id] {
			s.Updated++
		}
	}
	return s
}

// stopsOf lists the tasks desired running in prev that next no longer
// wants running, each with the reason the node logs.
func stopsOf(prev, next []api.Task) []taskStop {
	now := map[string]api.Task{}
	for _, t := range next {
		now[t.ID] = t
	}
	var out []taskStop
	for _, t := range prev {
		if !t.DesiredState.Before(api.TaskShutdown) {
			continue
		}
		n, ok := now[t.ID]
		switch {
		case !ok:
			out = append(out, taskStop{t, "it is no longer assigned to this node"})
		case !n.DesiredState.Before(api.TaskShutdown):
			why := n.StopReason
			if why == "" {
				why = "the managers set its desired state to " + string(n.DesiredState)
			}
			out = append(out, taskStop{n, why})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].task.ID < out[j].task.ID })
	return out
}

type taskStop struct {
	task api.Task
	why  string
}

// stopAfterCut has the node stop the tasks whose service's stop-after the
// cut has outlasted: they are handed to the executor desired shutdown. cut
// is how long the node has been cut off (0 while in touch). It returns the
// tasks to hand over and those it stopped.
func stopAfterCut(tasks []api.Task, stopAfter map[string]api.Duration, cut time.Duration) ([]api.Task, []api.Task) {
	if cut <= 0 || len(stopAfter) == 0 {
		return tasks, nil
	}
	out := make([]api.Task, 0, len(tasks))
	var stopped []api.Task
	for _, t := range tasks {
		if d := stopAfter[t.ServiceID]; d > 0 && cut >= d.D() && t.DesiredState.Before(api.TaskShutdown) {
			t.DesiredState = api.TaskShutdown
			stopped = append(stopped, t)
		}
		out = append(out, t)
	}
	return out, stopped
}

// nextStop is when the earliest task not yet stopped reaches its
// stop-after, given the cut began at since; zero if none will.
func nextStop(tasks []api.Task, stopAfter map[string]api.Duration, since time.Time) time.Time {
	var at time.Time
	for _, t := range tasks {
		d := stopAfter[t.ServiceID]
		if d <= 0 || !t.DesiredState.Before(api.TaskShutdown) {
			continue
		}
		if x := since.Add(d.D()); at.IsZero() || x.Before(at) {
			at = x
		}
	}
	return at
}

// human writes a duration as the reconnect line does: 2h13m, 1m30s, 45s.
func human(d time.Duration) string {
	d = d.Round(time.Second)
	if d < time.Second {
		return "0s"
	}
	h, m, s := d/time.Hour, (d%time.Hour)/time.Minute, (d%time.Minute)/time.Second
	var b strings.Builder
	if h > 0 {
		fmt.Fprintf(&b, "%dh", h)
	}
	if m > 0 {
		fmt.Fprintf(&b, "%dm", m)
	}
	if s > 0 && h == 0 {
		fmt.Fprintf(&b, "%ds", s)
	}
	return b.String()
}

func (a *Agent) now() time.Time { return a.cfg.Now() }

// heard records an answer from a manager. After a cut it starts the resync
// that sums up what the managers decided.
func (a *Agent) heard() {
	now := a.now()
	a.mu.Lock()
	a.link.heard = now
	if !a.link.cutSince.IsZero() {
		cut := now.Sub(a.link.cutSince)
		a.link.lastCut = cut
		a.link.cutSince = time.Time{}
		a.link.cutLogged = false
		var before []api.Task
		if a.applied != nil {
			before, _ = stopAfterCut(a.applied.Tasks, a.applied.StopAfter, cut)
		}
		a.link.resync = &resync{after: cut, at: now.Add(a.settle()), before: before, latest: before}
		if a.current != nil {
			a.link.resync.latest = a.current.Tasks
		}
	}
	save := now.Sub(a.link.saved) >= heardEvery
	if save {
		a.link.saved = now
	}
	a.mu.Unlock()
	if save {
		if err := a.cache.put(keyHeard, now); err != nil {
			a.log.Warn("persist last contact", zap.Error(err))
		}
	}
}

// received notes assignments from a manager for the resync, re-reports the
// tasks the managers lost track of while the node was down (they list them
// unknown), and logs every task they stop with the reason.
func (a *Agent) received(prev *api.Assignments, as *api.Assignments) {
	a.mu.Lock()
	if a.link.resync != nil {
		a.link.resync.latest = as.Tasks
	}
	var again []string
	assigned := map[string]bool{}
	for _, t := range as.Tasks {
		assigned[t.ID] = true
		st, ok := a.known[t.ID]
		if _, queued := a.pending[t.ID]; ok && !queued && t.Status.State == api.TaskUnknown {
			a.pending[t.ID] = st
			again = append(again, t.ID)
		}
	}
	for id := range a.known {
		if !assigned[id] {
			delete(a.known, id)
		}
	}
	for id := range a.link.stopped {
		if !assigned[id] {
			delete(a.link.stopped, id)
		}
	}
	a.mu.Unlock()
	if len(again) > 0 {
		a.log.Info("reporting again the tasks the managers lost track of while this node was down", zap.Strings("task_ids", again))
		signal(a.reportCh)
	}
	if prev == nil {
		return
	}
	for _, s := range stopsOf(prev.Tasks, as.Tasks) {
		a.log.Info(fmt.Sprintf("stopping task %s of service %s: %s", s.task.ID, s.task.ServiceName, s.why),
			zap.String("task_id", s.task.ID), zap.String("service", s.task.ServiceName), zap.Uint64("slot", s.task.Slot))
	}
}

// stopAfterCut is the package function with the node's own state: the cut
// so far, and the tasks it stopped by itself earlier, which stay stopped
// after the cut ends (the managers replace them under a new ID; until they
// have heard of the stop they still list the task desired running).
func (a *Agent) stopAfterCut(as *api.Assignments, tasks []api.Task) []api.Task {
	tasks, _ = stopAfterCut(tasks, as.StopAfter, a.cut(a.now()))
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.link.stopped) == 0 {
		return tasks
	}
	out := make([]api.Task, len(tasks)) // tasks may be the assignments' own
	for i, t := range tasks {
		if a.link.stopped[t.ID] && t.DesiredState.Before(api.TaskShutdown) {
			t.DesiredState = api.TaskShutdown
		}
		out[i] = t
	}
	return out
}

// cut is how long the node has been cut off, 0 while in touch.
func (a *Agent) cut(now time.Time) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.link.cutSince.IsZero() {
		return 0
	}
	return now.Sub(a.link.cutSince)
}

// tick is the time-driven half: it judges a silence long enough a cut,
// re-applies the assignments when a stop-after comes due, and sums up a
// settled resync.
func (a *Agent) tick() {
	now := a.now()
	a.mu.Lock()
	var reapply *api.Assignments
	if a.link.cutSince.IsZero() && !a.link.heard.IsZero() && now.Sub(a.link.heard) > a.cutAfter() {
		a.link.cutSince = a.link.heard
	}
	if since := a.link.cutSince; !since.IsZero() {
		if !a.link.cutLogged {
			a.link.cutLogged = true
			n := 0
			if a.current != nil {
				n = len(a.current.Tasks)
			}
			a.log.Warn(fmt.Sprintf("cut off from the managers: no answer for %s; keeping %d tasks on the cached assignments", human(now.Sub(since)), n))
		}
		if as := a.current; as != nil {
			if at := nextStop(as.Tasks, as.StopAfter, since); !at.IsZero() && !now.Before(at) {
				_, stopped := stopAfterCut(as.Tasks, as.StopAfter, now.Sub(since))
				for _, t := range stopped {
					if a.link.stopped[t.ID] {
						continue
					}
					if a.link.stopped == nil {
						a.link.stopped = map[string]bool{}
					}
					a.link.stopped[t.ID] = true
					reapply = as
					a.log.Info(fmt.Sprintf("stopping task %s of service %s: cut off from the managers for %s, its disconnect stop-after is %s",
						t.ID, t.ServiceName, human(now.Sub(since)), human(as.StopAfter[t.ServiceID].D())),
						zap.String("task_id", t.ID), zap.String("service", t.ServiceName))
				}
			}
		}
	}
	var done *resync
	if r := a.link.resync; r != nil && !now.Before(r.at) {
		done, a.link.resync = r, nil
	}
	var sum SyncSummary
	if done != nil {
		sum = summarize(done.before, done.latest)
		if a.link.outcomes == nil {
			a.link.outcomes = map[string]uint64{}
		}
		a.link.outcomes[OutcomeKept] += uint64(sum.Kept)
		a.link.outcomes[OutcomeStopped] += uint64(sum.Stopped)
		a.link.outcomes[OutcomeUpdated] += uint64(sum.Updated)
	}
	a.mu.Unlock()
	if done != nil {
		a.log.Info(fmt.Sprintf("reconnected to cluster after %s, state synced (%d tasks kept, %d stopped, %d updated)", human(done.after), sum.Kept, sum.Stopped, sum.Updated),
			zap.Duration("disconnected", done.after), zap.Int("kept", sum.Kept), zap.Int("stopped", sum.Stopped), zap.Int("updated", sum.Updated))
	}
	if reapply != nil {
		// Through publish, so that a node deciding its own table (local.go)
		// keeps it; apply enforces the stop-after on either.
		a.republish()
	}
}

// DisconnectStats are the figures behind the node's disconnect metrics.
type DisconnectStats struct {
	// Current is how long the node has been cut off, 0 while in touch.
	Current time.Duration
	// Last is the length of the previous cut, 0 if there was none.
	Last time.Duration
	// Outcomes counts the tasks of every sync after a cut, by outcome.
	Outcomes map[string]uint64
}

// Disconnect returns the node's disconnect figures.
func (a *Agent) Disconnect() DisconnectStats {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	st := DisconnectStats{Last: a.link.lastCut, Outcomes: map[string]uint64{OutcomeKept: 0, OutcomeStopped: 0, OutcomeUpdated: 0}}
	if !a.link.cutSince.IsZero() {
		st.Current = now.Sub(a.link.cutSince)
	}
	for k, v := range a.link.outcomes {
		st.Outcomes[k] = v
	}
	return st
}

// disconnectLoop runs tick twice a heartbeat.
func (a *Agent) disconnectLoop(ctx context.Context) {
	t := time.NewTicker(max(a.cfg.Heartbeat/2, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.tick()
		}
	}
}
