package agent

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/api"
)

// The agent's half of a cut: it notices the managers are gone (autonomy),
// hands the applier the node's own table meanwhile (Effective) and the
// managers' again once that is safe, and says so in the log.

// answered records a manager's answer; the first after a cut ends the
// watch's wait so that the managers' table is fetched now.
func (a *Agent) answered() {
	a.mu.Lock()
	back := a.auto.answered(a.cfg.Now())
	a.mu.Unlock()
	if back {
		a.log.Info("a manager answers again; fetching the managers' assignments")
		signal(a.kick)
	}
}

// gotAssignments records that assignments came from a manager.
func (a *Agent) gotAssignments() {
	a.mu.Lock()
	a.auto.received(a.cfg.Now())
	a.mu.Unlock()
}

// cancelOnKick cancels a blocking query when a kick arrives; kicked reports
// whether that is why it ended.
func (a *Agent) cancelOnKick(ctx context.Context, cancel context.CancelFunc) (kicked func() bool) {
	var was atomic.Bool
	go func() {
		select {
		case <-ctx.Done():
		case <-a.kick:
			was.Store(true)
			cancel()
		}
	}()
	return was.Load
}

// pruneLocal drops the runtime's reports of tasks not in tasks. Call with
// a.mu held.
func (a *Agent) pruneLocal(tasks []api.Task) {
	keep := make(map[string]bool, len(tasks))
	for _, t := range tasks {
		keep[t.ID] = true
	}
	for id := range a.local {
		if !keep[id] {
			delete(a.local, id)
		}
	}
}

// localView is what the node knows by itself at now, but for its peers'
// health (peers). Call with a.mu held.
func (a *Agent) localView(now time.Time) Local {
	return Local{Now: now, Tasks: a.local, PeerDown: a.cfg.PeerDown, AtCut: a.auto.atCut}
}

// peers asks how the other nodes answer the probes; nil without probes.
func (a *Agent) peers() map[string]PeerHealth {
	if a.cfg.Peers == nil {
		return nil
	}
	return a.cfg.Peers()
}

// publish offers the applier what the node should apply now: the managers'
// assignments, or while the node decides alone its own table from them. It
// offers nothing when that did not change.
//
// The node's own table is computed outside mu, from a copy of what it is
// made of: over a large table that takes a while, and heartbeats and the
// watch take mu (a simulator's 500 nodes in one process stopped
// heartbeating behind it). pubMu keeps publishes in order instead, so an
// older table is never offered after a newer one.
func (a *Agent) publish() {
	a.pubMu.Lock()
	defer a.pubMu.Unlock()
	a.mu.Lock()
	cur, offered := a.current, a.offered
	alone := cur != nil && a.auto.local()
	var view Local
	if alone {
		view = a.localView(a.cfg.Now())
		view.Tasks = maps.Clone(view.Tasks)
	}
	a.mu.Unlock()
	out := cur
	if alone {
		view.Peers = a.peers()
		out = Effective(cur, view)
		if offered != nil && out.Index == offered.Index &&
			reflect.DeepEqual(out.Services, offered.Services) && reflect.DeepEqual(out.Tasks, offered.Tasks) {
			out = nil
		}
	} else if out == offered {
		out = nil
	}
	if out == nil {
		return
	}
	a.mu.Lock()
	a.offered = out
	a.mu.Unlock()
	a.offer(out)
}

// republish offers the node's table again even if it looks unchanged: the
// applier was handed something else meanwhile.
func (a *Agent) republish() {
	a.mu.Lock()
	a.offered = nil
	a.mu.Unlock()
	a.publish()
}

// localLoop re-decides every LocalTick who decides the node's table, and
// re-publishes: a peer's health changes with time alone.
func (a *Agent) localLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.LocalTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.stepLocal()
		a.publish()
	}
}

func (a *Agent) stepLocal() {
	a.mu.Lock()
	now := a.cfg.Now()
	cur := a.current
	fresh, peersOK := false, false
	// Only while deciding alone: asking for peer health keeps the probes
	// going, which a node that hears from its managers does not need.
	if cur != nil && a.auto.local() {
		l := a.localView(now)
		l.Peers = a.peers()
		fresh, peersOK = Fresh(cur, a.local), PeersAnswer(cur, l)
	}
	if !a.auto.local() && a.cfg.Peers != nil && now.Sub(a.auto.lastOK) > a.cfg.Heartbeat*3/2 {
		// A heartbeat is late: start the probes now (reading their
		// records does), so that if this becomes a cut the peers' silence
		// is already on record when it is declared.
		a.cfg.Peers()
	}
	since := a.auto.since
	ev := a.auto.step(now, cur, fresh, peersOK)
	if ev == autonomyCut {
		since = a.auto.since
	}
	a.mu.Unlock()
	// The cut and the reconnect with what the sync did are logged by the
	// disconnect half (disconnect.go); these lines are about the table.
	switch ev {
	case autonomyCut:
		a.log.Info("no manager answers: this node adjusts its own service table until they do",
			zap.Duration("silent_for", now.Sub(since).Round(time.Millisecond)))
	case autonomyBack:
		how := "fresh, and its peers answer"
		if !fresh || !peersOK {
			how = fmt.Sprintf("handover timed out (fresh %v, peers answer %v)", fresh, peersOK)
		}
		a.log.Info("the managers' service table is in effect again: "+how,
			zap.Duration("decided_alone_for", now.Sub(since).Round(time.Millisecond)))
	}
}
