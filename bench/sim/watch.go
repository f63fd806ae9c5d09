//go:build linux

package sim

import (
	"context"
	"sync"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// Watch times how long a change takes to reach every node's applied
// service table: Arm it with a test of the assignments before making the
// change, then Wait for the nodes.
type Watch struct {
	mu     sync.Mutex
	target func(*api.Assignments) bool
	start  time.Time
	seen   map[string]time.Duration
	cond   chan struct{}
}

// Arm starts timing: from now, each node's first applied table for which
// target is true is recorded.
func (w *Watch) Arm(target func(*api.Assignments) bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.target, w.start, w.seen, w.cond = target, time.Now(), map[string]time.Duration{}, make(chan struct{}, 1)
}

func (w *Watch) applied(n *Node, a *api.Assignments) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.target == nil {
		return
	}
	if _, ok := w.seen[n.ID]; ok || !w.target(a) {
		return
	}
	w.seen[n.ID] = time.Since(w.start)
	select {
	case w.cond <- struct{}{}:
	default:
	}
}

// Wait returns the per-node delays once nodes nodes saw the change, or what
// was seen when ctx ends, and disarms.
func (w *Watch) Wait(ctx context.Context, nodes int) []time.Duration {
	for {
		w.mu.Lock()
		done, cond := len(w.seen) >= nodes, w.cond
		w.mu.Unlock()
		if done {
			break
		}
		select {
		case <-ctx.Done():
		case <-cond:
			continue
		}
		break
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]time.Duration, 0, len(w.seen))
	for _, d := range w.seen {
		out = append(out, d)
	}
	w.target = nil
	return out
}

// groupWeight returns the weight of version in service name's table.
func groupWeight(a *api.Assignments, name, version string) (uint32, bool) {
	for _, s := range a.Services {
		if s.Name != name {
			continue
		}
		for _, g := range s.Groups {
			if g.Version == version {
				return g.Weight, true
			}
		}
	}
	return 0, false
}
