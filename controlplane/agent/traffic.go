package agent

import (
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/api"
)

// TrafficReporter is implemented by a Network whose dataplane counts, per
// backend task, the connections it balanced and those that failed
// (cumulative, as the kernel keeps them). The agent reports windows of it
// for canary analysis.
type TrafficReporter interface {
	BackendTraffic() (map[string]api.BackendTraffic, error)
}

// trafficWindow is one service's counting window on this node: it opens
// when the node first sees the service split traffic between a given set of
// versions (a canary beside the stable version), so that the figures the
// managers compare start together for both versions instead of carrying
// the stable version's history.
type trafficWindow struct {
	versions string
	last     map[string]api.BackendTraffic // the dataplane's counts at the last read
	acc      map[string]api.BackendTraffic // counted in the window so far
}

// windowTraffic returns what the node reports: for each backend of a
// service splitting traffic between versions (a canary: two groups or more
// with weight), what it counted since the service's window opened, sorted
// by task ID; backends with no connection yet are left out. A blue/green
// set waiting without traffic is no split, so it costs no raft writes.
// windows is updated in place: windows of services that stopped splitting
// are closed.
//
// A backend first seen after its window opened counts from zero: it is a
// new canary task (it had no traffic before it joined the table). A backend
// whose counters went backwards (the proxy restarted, or the kernel's were
// dropped with the backend and started again) counts on from its new
// values, so what the window holds never shrinks.
func windowTraffic(services []api.ServiceEndpoints, now map[string]api.BackendTraffic, windows map[string]*trafficWindow) []api.BackendTraffic {
	var out []api.BackendTraffic
	open := map[string]bool{}
	for _, s := range services {
		if !splits(s) {
			continue
		}
		vs := make([]string, 0, len(s.Groups))
		for _, g := range s.Groups {
			vs = append(vs, g.Version)
		}
		slices.Sort(vs)
		sig := strings.Join(vs, ",")
		open[s.ServiceID] = true
		w := windows[s.ServiceID]
		if w == nil || w.versions != sig {
			w = &trafficWindow{versions: sig, last: map[string]api.BackendTraffic{}, acc: map[string]api.BackendTraffic{}}
			for _, g := range s.Groups {
				for _, b := range g.Backends {
					w.last[b.TaskID] = now[b.TaskID]
				}
			}
			windows[s.ServiceID] = w
			continue
		}
		for _, g := range s.Groups {
			for _, b := range g.Backends {
				id := b.TaskID
				cur := now[id]
				a := w.acc[id]
				a.TaskID = id
				a.Connections += grown(cur.Connections, w.last[id].Connections)
				a.ConnectFailures += grown(cur.ConnectFailures, w.last[id].ConnectFailures)
				a.Resets += grown(cur.Resets, w.last[id].Resets)
				w.acc[id], w.last[id] = a, cur
				if a.Connections > 0 || a.Errors() > 0 {
					out = append(out, a)
				}
			}
		}
	}
	for id := range windows {
		if !open[id] {
			delete(windows, id)
		}
	}
	slices.SortFunc(out, func(a, b api.BackendTraffic) int { return strings.Compare(a.TaskID, b.TaskID) })
	return out
}

// grown is how much a cumulative counter grew since last; a counter below
// last started again from zero.
func grown(cur, last uint64) uint64 {
	if cur < last {
		return cur
	}
	return cur - last
}

// splits reports whether more than one version of s gets traffic.
func splits(s api.ServiceEndpoints) bool {
	n := 0
	for _, g := range s.Groups {
		if g.Weight > 0 {
			n++
		}
	}
	return n > 1
}

// traffic is the Traffic of the next heartbeat, from the assignments in
// effect (their service table is what the dataplane counts against).
func (a *Agent) traffic() []api.BackendTraffic {
	tr, ok := a.cfg.Network.(TrafficReporter)
	if !ok {
		return nil
	}
	a.mu.Lock()
	applied := a.applied
	a.mu.Unlock()
	if applied == nil || !slices.ContainsFunc(applied.Services, splits) {
		// Nothing to count for: spare the heartbeat a walk of the
		// dataplane's counters.
		a.windowMu.Lock()
		a.windows, a.lastTraffic = nil, nil
		a.windowMu.Unlock()
		return nil
	}
	now, err := tr.BackendTraffic()
	a.windowMu.Lock()
	defer a.windowMu.Unlock()
	if err != nil {
		// Partial counts would look like fewer errors (or, read next time,
		// like counters that started again): repeat the last figures instead.
		a.log.Debug("read backend traffic", zap.Error(err))
		return a.lastTraffic
	}
	if a.windows == nil {
		a.windows = map[string]*trafficWindow{}
	}
	a.lastTraffic = windowTraffic(applied.Services, now, a.windows)
	return a.lastTraffic
}
