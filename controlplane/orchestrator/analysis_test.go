package orchestrator

import (
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

func vt(v string, conns, failures, resets uint64) VersionTraffic {
	return VersionTraffic{Versions: []string{v}, Connections: conns, ConnectFailures: failures, Resets: resets}
}

func TestAnalyzeCanary(t *testing.T) {
	since := t0
	now := t0.Add(42 * time.Second)
	cases := []struct {
		name           string
		canary, stable VersionTraffic
		max            float64
		min            uint64
		judged, failed bool
		figures        []string
	}{
		{"no traffic yet", vt("v2", 0, 0, 0), vt("v1", 0, 0, 0), 0.01, 0, false, false, []string{"not judged before 100 connections"}},
		{"every connection reset, but below the default minimum", vt("v2", 99, 0, 99), vt("v1", 900, 0, 0), 0.01, 0, false, false, nil},
		{"below a minimum of its own", vt("v2", 150, 0, 150), vt("v1", 900, 0, 0), 0.01, 200, false, false, []string{"not judged before 200"}},
		{"at the minimum, resets over the maximum", vt("v2", 100, 0, 31), vt("v1", 900, 0, 0), 0.01, 0, true, true,
			[]string{"canary v2 31.0% of 100 connections failed (0 connect failures, 31 resets) in 42s", "stable v1 0.0% of 900", "max error rate 1.0%"}},
		{"connect failures count too", vt("v2", 200, 5, 0), vt("v1", 1800, 0, 0), 0.01, 0, true, true, []string{"2.5% of 200", "5 connect failures"}},
		{"at the maximum is not over it", vt("v2", 200, 1, 1), vt("v1", 1800, 0, 0), 0.01, 0, true, false, nil},
		{"clean canary", vt("v2", 500, 0, 0), vt("v1", 4500, 0, 0), 0.01, 0, true, false, nil},
		{"over the maximum but no worse than stable: not the canary's fault", vt("v2", 200, 0, 10), vt("v1", 1800, 0, 90), 0.01, 0, true, false,
			[]string{"stable v1 5.0% of 1800"}},
		{"over the maximum and worse than a failing stable", vt("v2", 200, 0, 20), vt("v1", 1800, 0, 90), 0.01, 0, true, true, nil},
		{"stable without traffic", vt("v2", 100, 0, 2), vt("v1", 0, 0, 0), 0.01, 0, true, true, []string{"stable v1 0.0% of 0"}},
		{"a generous maximum", vt("v2", 100, 0, 4), vt("v1", 900, 0, 0), 0.05, 0, true, false, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := AnalyzeCanary(c.canary, c.stable, c.max, c.min, since, now)
			if v.Judged != c.judged || v.Failed != c.failed {
				t.Fatalf("judged %v failed %v, want %v %v (%s)", v.Judged, v.Failed, c.judged, c.failed, v.Figures)
			}
			for _, f := range c.figures {
				if !strings.Contains(v.Figures, f) {
					t.Errorf("figures %q lack %q", v.Figures, f)
				}
			}
		})
	}
}

// canaryWithAnalysis starts a canary of web (10 replicas, v1 → v2, 10 %)
// with a 1 % maximum error rate and returns once it waits for promotion.
func canaryWithAnalysis(t *testing.T, steps ...uint32) *sim {
	t.Helper()
	s := newSim(t, 3)
	s.cluster.NodeDownGrace = api.Duration(time.Hour)
	svc := replicated("web", 10)
	svc.Spec.Version = "v1"
	svc.Spec.Update = api.UpdateConfig{Strategy: api.StrategyCanary, Parallelism: 1, CanaryWeight: 10,
		CanaryMaxErrorRate: 0.01, CanarySteps: steps, CanaryInterval: api.Duration(time.Minute)}
	s.services = []api.Service{svc}
	s.run(3)
	s.updateSpec("web", func(sp *api.ServiceSpec) { sp.Version = "v2" })
	s.run(4)
	if u := s.service("web").Update; u.State != api.UpdateAwaitingPromote {
		t.Fatalf("canary not waiting: %+v", u)
	}
	return s
}

// report has every node say it balanced conns connections to each running
// task of version v, resets of them reset (spread over the nodes).
func (s *sim) report(v string, conns, resets uint64) {
	for i := range s.nodes {
		n := &s.nodes[i]
		var keep []api.BackendTraffic
		for _, b := range n.Status.Traffic {
			if x := s.findTask(b.TaskID); x == nil || x.Version != v {
				keep = append(keep, b)
			}
		}
		for _, x := range s.running("web") {
			if x.Version == v {
				keep = append(keep, api.BackendTraffic{TaskID: x.ID, Connections: conns, Resets: resets})
			}
		}
		n.Status.Traffic = keep
	}
}

func (s *sim) findTask(id string) *api.Task {
	for i := range s.tasks {
		if s.tasks[i].ID == id {
			return &s.tasks[i]
		}
	}
	return nil
}

// TestCanaryAnalysisRollsBack: a canary that resets connections is rolled
// back by itself once judged, the figures in the reason and the traffic
// switched back in the same write; one that does not, or has too few
// connections to judge, keeps waiting.
func TestCanaryAnalysisRollsBack(t *testing.T) {
	cases := []struct {
		name             string
		canary, canaryRs uint64 // per node and canary task
		stable, stableRs uint64 // per node and stable task
		rolledBack       bool
		reason           []string
	}{
		{"resets over the maximum", 40, 12, 40, 0, true,
			[]string{"rolled back by canary analysis: canary v2 30.0% of 120 connections failed (0 connect failures, 36 resets)", "stable v1 0.0% of 1080", "max error rate 1.0%", "traffic switched back at once"}},
		{"healthy canary", 40, 0, 40, 0, false, nil},
		{"under the maximum", 400, 1, 400, 0, false, nil},
		{"too few connections to judge", 30, 30, 40, 0, false, nil},
		{"the stable version fails as much", 40, 12, 40, 12, false, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := canaryWithAnalysis(t)
			s.report("v1", c.stable, c.stableRs)
			s.report("v2", c.canary, c.canaryRs)
			r := s.reconcile()
			s.apply(r)
			u := s.service("web").Update
			if !c.rolledBack {
				if u.State != api.UpdateAwaitingPromote {
					t.Fatalf("canary left its wait: %+v", u)
				}
				return
			}
			if u.State != api.UpdateRolledBack || u.Weights["v2"] != 0 || u.Weights["v1"] != 100 {
				t.Fatalf("not rolled back with the weights flipped: %+v", u)
			}
			for _, f := range c.reason {
				if !strings.Contains(u.Message, f) {
					t.Errorf("reason %q lacks %q", u.Message, f)
				}
			}
			s.run(5)
			for _, x := range s.running("web") {
				if x.Version != "v1" {
					t.Fatalf("task %s of %s still runs after the rollback", x.ID, x.Version)
				}
			}
		})
	}
}

// TestCanaryStepsWaitForAVerdict: with analysis on, an automatic step is
// not taken on too few connections to judge the canary, however long the
// interval ran; once judged healthy, it is.
func TestCanaryStepsWaitForAVerdict(t *testing.T) {
	s := canaryWithAnalysis(t, 10, 50, 100)
	for i := 0; s.service("web").Update.StepAt.IsZero(); i++ {
		if i > 10 {
			t.Fatalf("the step's interval never started: %+v", s.service("web").Update)
		}
		s.run(1)
	}
	s.now = s.service("web").Update.StepAt.Add(time.Minute)
	s.run(2)
	u := s.service("web").Update
	if u.Weights["v2"] != 10 || !strings.Contains(u.Message, "waiting for enough connections") {
		t.Fatalf("stepped without a verdict: %+v", u)
	}
	s.report("v1", 50, 0)
	s.report("v2", 50, 0)
	s.run(2)
	if w := s.service("web").Update.Weights["v2"]; w != 50 {
		t.Fatalf("judged healthy, canary weight %d, want the next step (50): %+v", w, s.service("web").Update)
	}
}
