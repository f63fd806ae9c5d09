package manager

import (
	"maps"
	"sync"
	"time"

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
}

func (a *ackTable) record(nodeID string, index uint64, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.acks == nil {
		a.acks = map[string]api.TableAck{}
	}
	prev, ok := a.acks[nodeID]
	if ok && prev.Index == index {
		return // a heartbeat repeating what we know: At stays the first time heard
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
}

// RecordTableAck notes the service-table index a node applied.
func (m *Manager) RecordTableAck(nodeID string, index uint64, at time.Time) {
	m.acks.record(nodeID, index, at)
}

// TableAcks returns what this manager heard from each node (only the
// leader's is complete: agents' heartbeats go to the leader).
func (m *Manager) TableAcks() map[string]api.TableAck { return m.acks.snapshot() }
