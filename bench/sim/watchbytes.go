//go:build linux

package sim

import (
	"os"
	"time"
)

// watchMark is where the nodes' assignments watches stood at one moment:
// the bytes their connections moved, the answers that carried a change
// (not the empty answer of a wait that ran out), and the CPU of this
// process, which is the simulated nodes' (the managers are processes of
// their own).
type watchMark struct {
	bytes, changes int64
	cpu            time.Duration
	at             time.Time
}

func (r *run) watchMark() watchMark {
	m := watchMark{at: time.Now()}
	for _, n := range r.nodes {
		if n == nil {
			continue
		}
		m.bytes += n.mgr.watchBytes.Load()
		m.changes += n.mgr.changes.Load()
	}
	if ps, err := readProc(os.Getpid()); err == nil {
		m.cpu = ps.CPU
	}
	return m
}

// watchFigures adds to the table what the watch cost the nodes between
// two marks: per node, per change each node received, and the nodes' CPU.
func (r *run) watchFigures(phase string, a, b watchMark) {
	changes := b.changes - a.changes
	perChange := 0.0
	if changes > 0 {
		perChange = float64(b.bytes-a.bytes) / float64(changes)
	}
	n := float64(r.p.Nodes)
	r.tb.Add("watch bytes per node per change "+phase, "%.1f KiB (%.1f changes per node, %.1f MiB per node in all)",
		perChange/1024, float64(changes)/n, float64(b.bytes-a.bytes)/n/(1<<20))
	if el := b.at.Sub(a.at).Seconds(); el > 0 {
		r.tb.Add("simulated nodes' CPU "+phase, "%.2f cores (%.1f ms per node per change)",
			(b.cpu-a.cpu).Seconds()/el, float64((b.cpu-a.cpu).Milliseconds())/max(float64(changes), 1))
	}
}
