//go:build linux

package sim

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Profiles: ci (bench-smoke), smoke (make sim-smoke: 200 nodes, 2,000
// tasks) and full (make sim: 500 and 2,000 nodes; 5,000 with
// WARREN_SIM_NODES=5000).
var profiles = map[string][]Profile{
	// ci is what bench-smoke (so make ci) runs: the smoke profile halved to
	// stay inside CI's budget on a shared two-core machine.
	"ci": {{
		Name: "ci", Nodes: 100, Tasks: 1000, ServiceSize: 100, RollingTasks: 100, RollingSteps: 4, WeightTasks: 10,
		JoinConcurrency: 16, Kills: 1, Disconnect: 0.1, Deadline: 4 * time.Minute,
		// With the default 500ms, managers starved by the simulated nodes
		// and the rest of CI on two cores vote each other out several
		// times a minute and the run measures elections. make sim-smoke and
		// make sim keep the default.
		RaftTimeout: 2 * time.Second,
	}},
	"smoke": {{
		Name: "smoke", Nodes: 200, Tasks: 2000, ServiceSize: 100, RollingTasks: 200, RollingSteps: 4, WeightTasks: 20,
		JoinConcurrency: 16, Kills: 1, Disconnect: 0.1, Deadline: 5 * time.Minute,
	}},
	// The full sizes give nodes a 5 minute grace before they are held
	// down: hundreds of simulated nodes in this one process, on the cores
	// the managers use too, miss heartbeats while they decode a burst of
	// changes — not a partition, but the managers cannot tell, and with
	// 30 s the full-500 run rescheduled thousands of tasks off "down"
	// nodes, which made more changes for the nodes to decode, and never
	// finished placing. Real nodes each have their own CPU.
	"full": {
		{Name: "full-500", Nodes: 500, Tasks: 10000, ServiceSize: 250, RollingTasks: 5000, RollingSteps: 10, WeightTasks: 50,
			JoinConcurrency: 16, Kills: 3, Disconnect: 0.1, Deadline: 15 * time.Minute, NodeDownGrace: 5 * time.Minute},
		{Name: "full-2000", Nodes: 2000, Tasks: 50000, ServiceSize: 500, RollingTasks: 5000, RollingSteps: 10, WeightTasks: 100,
			JoinConcurrency: 16, Kills: 3, Disconnect: 0.1, Deadline: 30 * time.Minute, NodeDownGrace: 5 * time.Minute},
	},
}

// TestMain runs the binary as the API prober when asked (prober.go).
func TestMain(m *testing.M) {
	if os.Getenv(ProberEnv) != "" {
		os.Exit(ProberMain())
	}
	os.Exit(m.Run())
}

func warrenBin(b *testing.B) string {
	if p := os.Getenv("WARREN_BIN"); p != "" {
		return p
	}
	out := filepath.Join(b.TempDir(), "warren")
	if o, err := exec.Command("go", "build", "-o", out, "github.com/warrenhq/warren/cmd/warren").CombinedOutput(); err != nil {
		b.Fatalf("build warren: %v\n%s", err, o)
	}
	return out
}

// raiseFileLimit lifts the soft limit on open files to the hard one: every
// simulated node holds connections and a bbolt file, and the managers
// (started from here) inherit the limit.
func raiseFileLimit(b *testing.B) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		b.Fatal(err)
	}
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSim runs the profile named by WARREN_SIM_PROFILE (ci under
// WARREN_BENCH_SMOKE or when unset) and prints its table. It fails
// when a scenario cannot complete; a missed goal is printed, and fails the
// run only with WARREN_SIM_STRICT=1 (the goals are for 2,000 nodes on
// dedicated hardware, and this machine is shared).
func BenchmarkSim(b *testing.B) {
	name := os.Getenv("WARREN_SIM_PROFILE")
	if name == "" || os.Getenv("WARREN_BENCH_SMOKE") != "" {
		name = "ci"
	}
	ps, ok := profiles[name]
	if !ok {
		// One size of the full profile alone (full-500, full-2000): the
		// whole of it does not fit an hour on a shared two-core machine.
		for _, p := range profiles["full"] {
			if p.Name == name {
				ps, ok = []Profile{p}, true
			}
		}
	}
	if !ok {
		b.Fatalf("WARREN_SIM_PROFILE=%q: no such profile (ci, smoke, full, full-500, full-2000)", name)
	}
	if v := os.Getenv("WARREN_SIM_NODES"); v != "" && name == "full" {
		ps = append(ps, Profile{Name: "full-" + v, Nodes: 5000, Tasks: 50000, ServiceSize: 500, RollingTasks: 5000, RollingSteps: 10, WeightTasks: 100,
			JoinConcurrency: 16, Kills: 1, Disconnect: 0.1, Deadline: 40 * time.Minute, NodeDownGrace: 5 * time.Minute})
	}
	if v := os.Getenv("WARREN_SIM_RAFT_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("WARREN_SIM_RAFT_TIMEOUT=%q: %v", v, err)
		}
		for i := range ps {
			ps[i].RaftTimeout = d
		}
	}
	bin := warrenBin(b)
	raiseFileLimit(b)
	for i := 0; i < b.N; i++ {
		for _, p := range ps {
			dir, err := os.MkdirTemp("", "warren-sim-")
			if err != nil {
				b.Fatal(err)
			}
			var logw *os.File
			if testing.Verbose() {
				logw = os.Stderr
			}
			tb, err := Run(context.Background(), bin, dir, p, logw)
			if tb != nil {
				tb.Print(os.Stdout)
			}
			if err != nil {
				b.Fatalf("profile %s: %v (manager logs kept in %s)", p.Name, err, dir)
			}
			if os.Getenv("WARREN_SIM_KEEP") == "" {
				_ = os.RemoveAll(dir)
			} else {
				b.Logf("profile %s: manager logs kept in %s", p.Name, dir)
			}
			if m := tb.Missed(); len(m) > 0 && os.Getenv("WARREN_SIM_STRICT") == "1" {
				b.Errorf("profile %s missed: %s", p.Name, strings.Join(m, "; "))
			}
		}
	}
}
