package manager

import (
	"maps"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenhq/warren/controlplane/api"
)

// ackTable holds, in the leader's memory like heartbeats, the index of the
// service table each node last said it applied. A new leader starts empty:
// a node it has not heard from yet is waited for (within the drain
// timeout), and every heartbeat carries the index again.
type ackTable struct {
	mu   sync.Mutex
	acks map[string]api.TableAck
	wake chan struct{} // size 1: an ack moved; the leader loop re-plans

	// pending are store indexes this leader saw, oldest first, not yet in
	// effect on every ready node; prop observes how long each took.
	pending []commit
	prop    prometheus.Summary
}

type commit struct {
	index uint64
	at    time.Time
}

// propagationGiveUp drops an index some node never acknowledged (cut off,
// or down but not yet marked): it is not a sample of propagation.
const propagationGiveUp = 30 * time.Second

func newPropagation() prometheus.Summary {
	return prometheus.NewSummary(prometheus.SummaryOpts{
		Name: "warren_service_table_propagation_seconds",
		Help: "From a store change (a weight change, a task stopping or failing) seen by the leader to every ready node " +
			"having applied the service table that includes it.",
		Objectives: map[float64]float64{0.5: 0.01, 0.9: 0.005, 0.99: 0.001},
	})
}

// committed notes that the store reached index at time at.
func (a *ackTable) committed(index uint64, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n := len(a.pending); n > 0 && a.pending[n-1].index >= index {
		return
	}
	a.pending = append(a.pending, commit{index, at})
}

// observe retires every pending index that all of ready have applied.
func (a *ackTable) observe(ready []string, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.prop == nil {
		a.prop = newPropagation()
	}
	low := ^uint64(0)
	for _, id := range ready {
		low = min(low, a.acks[id].Index)
	}
	i := 0
	for ; i < len(a.pending); i++ {
		c := a.pending[i]
		if c.index <= low {
			a.prop.Observe(now.Sub(c.at).Seconds())
			continue
		}
		if now.Sub(c.at) < propagationGiveUp {
			break
		}
	}
	a.pending = a.pending[i:]
}

func (a *ackTable) propagation() prometheus.Summary {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.prop == nil {
		a.prop = newPropagation()
	}
	return a.prop
}

func (a *ackTable) record(nodeID string, index uint64, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.acks == nil {
		a.acks = map[string]api.TableAck{}
	}
	prev, ok := a.acks[nodeID]
	if ok && index <= prev.Index {
		// The same index: At stays the first time heard. A lower one is an
		// older heartbeat overtaken by a newer one — an agent keeps several
		// in flight, and the leader handles them concurrently — and taking
		// it would hold every drain waiting on this node until its next
		// heartbeat. A node's table never goes back: the agent caches
		// assignments before it applies them, so even a restarted one
		// resumes from at least the table it last acknowledged.
		return
	}
	a.acks[nodeID] = api.TableAck{Index: index, At: at}
	select {
	case a.wakeCh() <- struct{}{}:
	default:
	}
}

// wakeCh must be called with mu held.
func (a *ackTable) wakeCh() chan struct{} {
	if a.wake == nil {
		a.wake = make(chan struct{}, 1)
	}
	return a.wake
}

func (a *ackTable) woken() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.wakeCh()
}

// snapshot is never nil, so the planner always gates stops on it.
func (a *ackTable) snapshot() map[string]api.TableAck {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := maps.Clone(a.acks)
	if out == nil {
		out = map[string]api.TableAck{}
	}
	return out
}

func (a *ackTable) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.acks = nil
	a.pending = nil
}

// RecordTableAck notes the service-table index a node applied.
func (m *Manager) RecordTableAck(nodeID string, index uint64, at time.Time) {
	m.acks.record(nodeID, index, at)
}

// TableAcks returns what this manager heard from each node (only the
// leader's is complete: agents' heartbeats go to the leader).
func (m *Manager) TableAcks() map[string]api.TableAck { return m.acks.snapshot() }
