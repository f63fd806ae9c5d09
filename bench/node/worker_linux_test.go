package node

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/kernel-tests/ktest"
)

// names keeps this bench's hosts, interfaces and LAN apart from the
// kernel-test suites'.
var names = ktest.ClusterNames{Prefix: "wbw", WireGuard: "wbwg", Bridge: "wbwb", Containerd: "bw", LANBase: 251, LANSpread: 4}

// workerGoal is issue 17's goal for an agent, 40 MB (K3s' agent: ~275
// MB), in MiB — the unit everything here is reported in: 38.1 MiB.
const workerGoal = 40e6 / (1 << 20)

// BenchmarkWorkerRSS runs a manager and a worker on two namespace hosts —
// the worker joined with a real join token, over WireGuard — and reports
// the memory of the worker's Warren processes (the daemon and its devices)
// idle and with 10 tasks constrained to it, against the goal of ≤ 40 MB,
// both for the worker daemon alone and for all its processes.
func BenchmarkWorkerRSS(b *testing.B) {
	for i := 0; i < b.N; i++ {
		c := ktest.NewCluster(b, 2, names)
		mgr, wrk := c.Hosts[0], c.Hosts[1]
		c.Init(mgr)
		token := strings.TrimSpace(mgr.MustCLI("cluster", "join-token", "worker", "-q"))
		c.Join(wrk, mgr, token)
		mgr.MustCLI("image", "load", "-i", c.Image)
		time.Sleep(settle)
		measure := func(what string) {
			rss, pss, held, ss := report(b, "worker "+what, c.Bin, wrk.Netns)
			var daemon *proc
			ps := peak(ss).ps
			for i := range ps {
				if ps[i].pid == wrk.PID() {
					daemon = &ps[i]
				}
			}
			if daemon == nil {
				b.Fatalf("%s: the worker daemon (pid %d) is not among the worker's processes %+v", what, wrk.PID(), ps)
			}
			// One device process serves a node's WireGuard and DNS
			// (dataplane/nodedevice); a node that never upgraded runs no other.
			if len(ps) > 2 {
				b.Errorf("%s: %d Warren processes on the worker %+v; want the daemon and one device process", what, len(ps), ps)
			}
			key := strings.ReplaceAll(what, " ", "-")
			b.ReportMetric(float64(daemon.pss)/1024, key+"-daemon-PSS-MiB")
			b.ReportMetric(float64(daemon.rss)/1024, key+"-daemon-MiB")
			b.ReportMetric(float64(pss)/1024, key+"-all-PSS-MiB")
			b.ReportMetric(float64(rss)/1024, key+"-all-MiB")
			b.ReportMetric(float64(held)/1024, key+"-all-together-MiB")
			b.ReportMetric(float64(len(ps)), key+"-procs")
			// The goal against the daemon alone and against all the worker's
			// processes; "together" is the honest figure for a worker on a
			// machine of its own (PSS here shares the binary's pages with
			// the manager beside it). Each is the most held in any reading.
			daemonHeld := peakAlone(ss, daemon.pid)
			b.ReportMetric(float64(daemonHeld)/1024, key+"-daemon-together-MiB")
			b.Logf("worker %s against the 40 MB (%.1f MiB) goal: daemon together %.1f MiB (%.0f %%), PSS %.1f, RSS %.1f; all %d processes together %.1f MiB (%.0f %%), PSS %.1f, RSS %.1f",
				what, workerGoal, float64(daemonHeld)/1024, 100*float64(daemonHeld)/1024/workerGoal, float64(daemon.pss)/1024, float64(daemon.rss)/1024,
				len(ps), float64(held)/1024, 100*float64(held)/1024/workerGoal, float64(pss)/1024, float64(rss)/1024)
		}
		measure("idle")
		mgr.MustCLI("service", "create", "web", "--image", "warren/demo:v1", "--replicas", "10",
			"--constraint", "node.role==worker", "--timeout", "5m")
		ts := c.WaitRunning(mgr, "web", 10, 2*time.Minute, nil)
		wid := wrk.NodeID(b)
		for _, t := range ts {
			if t.NodeID != wid {
				b.Fatalf("task %s runs on %s, not on the worker %s", t.ID, t.NodeID, wid)
			}
		}
		time.Sleep(5 * time.Second) // logs flowing, health settled
		// Just after the starts the daemon still maps the code that
		// started them (pulling, CNI, containerd's client) until its next
		// trim: a peak for one trim period, reported on its own. The goal
		// is read against the steady state after it, as idle is after
		// the join; this window begins after a trim the first one held.
		measure(fmt.Sprintf("%d tasks starting", len(ts)))
		measure(fmt.Sprintf("%d tasks", len(ts)))
	}
}
