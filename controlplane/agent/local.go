package agent

import (
	"slices"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// While a node cannot reach the managers, nobody else can correct its
// service table: the backends of a node it cannot reach would time out for
// the whole cut, and a task it restarted locally would keep the address it
// had before. So for that time — and until the managers' table is both
// fresh (it reflects what this node reported) and usable (the peers it
// names answer) — the node adjusts the managers' last table with what it
// knows by itself. Everything here is pure; the agent supplies the clock.

// PeerHealth is what the node knows of another node's reachability over the
// mesh, from probes the node's network sends (nodenet's prober).
type PeerHealth struct {
	// Since is when probing this peer began; LastOK is its last answer
	// (zero: none yet).
	Since, LastOK time.Time
}

// Down reports whether the peer has not answered for longer than after.
func (p PeerHealth) Down(now time.Time, after time.Duration) bool {
	ref := p.LastOK
	if ref.IsZero() {
		ref = p.Since
	}
	return !ref.IsZero() && now.Sub(ref) > after
}

// Local is what a node knows by itself.
type Local struct {
	Now time.Time
	// Tasks are this node's tasks as its runtime last reported them.
	Tasks map[string]api.TaskStatus
	// Peers are the probed nodes; a node missing here is not judged.
	Peers map[string]PeerHealth
	// PeerDown is how long a peer may stay silent before its backends
	// leave the table.
	PeerDown time.Duration
	// AtCut is the assignments in effect when the node lost the managers:
	// a task it ran then and the managers now stop (a rejoin) is held —
	// kept running and in the table — until the node decides with the
	// managers again, so it leaves the table before it stops. Nil: none.
	AtCut *api.Assignments
}

// Effective is the assignments the node applies while it decides alone:
// last (the managers' latest) with
//   - backends on peers that stopped answering marked unhealthy (they come
//     back by themselves once the peer answers again);
//   - this node's backends at the address and health its runtime reports
//     (a task restarted in place has a new address at once; one that is not
//     running gets no traffic) — never above what the managers said when
//     they said terminating, which is how a drain is held;
//   - a task of this node that runs, should run and is in no table yet
//     added to its service's group of its version;
//   - tasks held for a rejoin (see Local.AtCut).
//
// The index stays last's: the table is last's with only this node's own
// knowledge applied, and what the managers wait for (a task listed as
// terminating) holds in it as it does in last.
func Effective(last *api.Assignments, l Local) *api.Assignments {
	if last == nil {
		return nil
	}
	out := *last
	out.Tasks, out.Services = slices.Clone(last.Tasks), make([]api.ServiceEndpoints, len(last.Services))

	byID := map[string]int{}
	for i, t := range out.Tasks {
		byID[t.ID] = i
	}
	// A held task is handed over as the managers had it running; from
	// there on it is one of this node's running tasks like any other.
	if l.AtCut != nil {
		for _, was := range l.AtCut.Tasks {
			st, ok := l.Tasks[was.ID]
			if !ok || st.State != api.TaskRunning || was.DesiredState != api.TaskRunning {
				continue
			}
			i, listed := byID[was.ID]
			switch {
			case !listed:
				byID[was.ID] = len(out.Tasks)
				out.Tasks = append(out.Tasks, was)
			case out.Tasks[i].DesiredState != api.TaskRunning:
				out.Tasks[i].DesiredState = api.TaskRunning
			}
		}
	}

	inTable := map[string]bool{}
	for si, s := range last.Services {
		s.Groups = slices.Clone(s.Groups)
		for gi := range s.Groups {
			g := &s.Groups[gi]
			g.Backends = slices.Clone(g.Backends)
			for bi := range g.Backends {
				b := &g.Backends[bi]
				inTable[b.TaskID] = true
				if b.NodeID == last.NodeID {
					i, ok := byID[b.TaskID]
					var t *api.Task
					if ok {
						t = &out.Tasks[i]
					}
					addr, h := localBackend(t, l.Tasks[b.TaskID])
					if addr != "" {
						b.Addr = addr
					}
					if b.Health != api.BackendTerminating || h != api.BackendActive {
						b.Health = h
					}
					continue
				}
				if p, ok := l.Peers[b.NodeID]; ok && p.Down(l.Now, l.PeerDown) && b.Health == api.BackendActive {
					b.Health = api.BackendUnhealthy
				}
			}
		}
		out.Services[si] = s
	}

	// This node's running tasks the table does not list: started while cut
	// off (or never reported before the cut), or held for a rejoin.
	for _, t := range out.Tasks {
		if inTable[t.ID] || t.DesiredState != api.TaskRunning {
			continue
		}
		st := l.Tasks[t.ID]
		addr, h := localBackend(&t, st)
		if addr == "" || h != api.BackendActive {
			continue
		}
		for si := range out.Services {
			s := &out.Services[si]
			if s.ServiceID != t.ServiceID {
				continue
			}
			for gi := range s.Groups {
				if s.Groups[gi].Version == t.Version {
					s.Groups[gi].Backends = append(s.Groups[gi].Backends, api.Backend{TaskID: t.ID, NodeID: last.NodeID, Addr: addr, Health: h})
				}
			}
		}
	}
	return &out
}

// localBackend is the address and health of one of this node's tasks from
// its runtime's report: what the managers compute (endpoints.Compute) from
// the same report, only sooner. A task the runtime does not know, or that
// does not run, takes no new connections.
func localBackend(t *api.Task, st api.TaskStatus) (string, api.BackendHealth) {
	if t == nil || st.State != api.TaskRunning || st.Addr == "" {
		return "", api.BackendUnhealthy
	}
	switch {
	case t.DesiredState != api.TaskRunning:
		return st.Addr, api.BackendTerminating
	case st.Health == api.HealthHealthy, st.Health == api.HealthNone && t.Spec.Health == nil:
		return st.Addr, api.BackendActive
	}
	return st.Addr, api.BackendUnhealthy
}

// Fresh reports whether the managers' assignments account for this node's
// reports: every task they still run here has the state and address the
// runtime last reported. Until then their table may still list a task at
// the address it had before a restart during the cut.
func Fresh(as *api.Assignments, local map[string]api.TaskStatus) bool {
	for _, t := range as.Tasks {
		st, ok := local[t.ID]
		if !ok || t.Status.State.Terminal() || t.DesiredState != api.TaskRunning {
			continue
		}
		if t.Status.State != st.State || t.Status.Addr != st.Addr {
			return false
		}
	}
	return true
}

// PeersAnswer reports whether every peer holding an active backend in as
// answers the node's probes, so that applying as sends no connection into
// a mesh path that is not back yet (after a cut the other side re-adds
// this node as a peer only once the managers see it ready again).
func PeersAnswer(as *api.Assignments, l Local) bool {
	for _, s := range as.Services {
		for _, g := range s.Groups {
			for _, b := range g.Backends {
				if b.NodeID == as.NodeID || b.Health != api.BackendActive {
					continue
				}
				if p, ok := l.Peers[b.NodeID]; ok && p.Down(l.Now, l.PeerDown) {
					return false
				}
			}
		}
	}
	return true
}
