package node

import (
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/memlimit"
)

// window is how long a measurement samples the node's processes: a whole
// trim period of theirs and a little more. Each process drops its mappings
// of the binary once a period (memlimit.TrimBinaryEvery) and maps pages
// again as it uses them, so what it holds rises through a period and falls
// at the next trim; the peak over a period is what it holds, not whatever
// phase one reading happened to catch.
const window = memlimit.TrimPeriod + time.Second

// sample is one reading of a node's Warren processes.
type sample struct {
	ps   []proc
	held int         // KiB, every page once (together)
	each map[int]int // KiB each process holds alone, by pid
}

// sampleProcs reads the Warren processes of netns once a second for window.
func sampleProcs(b *testing.B, bin, netns string) []sample {
	b.Helper()
	var out []sample
	for end := time.Now().Add(window); ; {
		ps := warrenProcs(b, bin, netns)
		// Each process's page frames read once: alone they give its own
		// figure, united the group's.
		s := sample{ps: ps, each: map[int]int{}}
		all := map[uint64]struct{}{}
		for _, p := range ps {
			own := map[uint64]struct{}{}
			if err := addFrames(p.pid, own); err != nil {
				b.Fatalf("pages of %d: %v", p.pid, err)
			}
			s.each[p.pid] = len(own) * pageSize / 1024
			for f := range own {
				all[f] = struct{}{}
			}
		}
		s.held = len(all) * pageSize / 1024
		out = append(out, s)
		if time.Now().After(end) {
			return out
		}
		time.Sleep(time.Second)
	}
}

// settle is how long a bench lets a node run before its first reading:
// start-up garbage collected and the first trim done.
const settle = memlimit.TrimPeriod + time.Second

// peak is the sample in which the processes held the most together.
func peak(ss []sample) sample {
	var best sample
	for _, s := range ss {
		if s.held > best.held {
			best = s
		}
	}
	return best
}

// peakAlone is the most process pid held alone in any of ss.
func peakAlone(ss []sample, pid int) int {
	most := 0
	for _, s := range ss {
		most = max(most, s.each[pid])
	}
	return most
}
