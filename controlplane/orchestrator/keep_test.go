package orchestrator

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// promoted runs a blue-green or canary rollout of web (3 replicas, v1 → v2)
// through its promotion, to the start of the keep window.
func promoted(t *testing.T, strategy api.UpdateStrategy) *sim {
	t.Helper()
	s := newSim(t, 3)
	// The tests jump the clock; nodes must not be marked down for it.
	s.cluster.NodeDownGrace = api.Duration(time.Hour)
	svc := replicated("web", 3)
	svc.Spec.Version = "v1"
	svc.Spec.Update = api.UpdateConfig{Strategy: strategy, Parallelism: 1, CanaryWeight: 30, Keep: api.Duration(30 * time.Second)}
	s.services = []api.Service{svc}
	s.run(3)
	s.updateSpec("web", func(sp *api.ServiceSpec) { sp.Version = "v2" })
	s.run(4)
	*s.service("web") = Promote(*s.service("web"), s.now)
	s.run(5)
	if u := s.service("web").Update; u.State != api.UpdateCompleted || u.KeepUntil.IsZero() {
		t.Fatalf("not in the keep window: %+v", u)
	}
	return s
}

func ids(ts []api.Task) map[string]bool {
	out := map[string]bool{}
	for _, x := range ts {
		out[x.ID] = true
	}
	return out
}

// TestRollbackWithinKeepIsAFlip: while the old version is kept, rollback
// sends all new connections back to it in its own write and creates
// nothing; the new tasks are only stopped.
func TestRollbackWithinKeepIsAFlip(t *testing.T) {
	for _, strategy := range []api.UpdateStrategy{api.StrategyBlueGreen, api.StrategyCanary} {
		t.Run(string(strategy), func(t *testing.T) {
			s := promoted(t, strategy)
			var old []api.Task
			for _, x := range s.running("web") {
				if x.Version == "v1" {
					old = append(old, x)
				}
			}
			if len(old) != 3 {
				t.Fatalf("%d old tasks kept, want 3", len(old))
			}
			s.now = s.service("web").Update.KeepUntil.Add(-time.Second)
			rb, err := Rollback(*s.service("web"), s.now, "operator")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rb.Update.Weights, map[string]uint32{"v1": 100, "v2": 0}) {
				t.Fatalf("rollback weights %v, want all to v1 at once", rb.Update.Weights)
			}
			*s.service("web") = rb
			r := s.reconcile()
			if len(r.Create) != 0 || len(r.Update) != 3 {
				t.Fatalf("rollback pass: %d creates, %d updates (want the 3 new tasks stopped)", len(r.Create), len(r.Update))
			}
			for _, u := range r.Update {
				if u.Version != "v2" || u.DesiredState != api.TaskShutdown {
					t.Fatalf("rollback touched %+v", u)
				}
			}
			s.run(3)
			if got := ids(s.running("web")); !reflect.DeepEqual(got, ids(old)) {
				t.Fatalf("running %v, want the kept tasks %v", got, ids(old))
			}
			svc := s.service("web")
			if svc.Update.State != api.UpdateRolledBack || svc.Update.CompletedAt.IsZero() || svc.Update.Weights != nil || !svc.Status.Converged {
				t.Fatalf("after the flip %+v %+v", svc.Update, svc.Status)
			}
		})
	}
}

// TestRollbackAfterKeepIsRolling: once the window is over the old tasks are
// gone, and a rollback is a rolling update back to the old spec.
func TestRollbackAfterKeepIsRolling(t *testing.T) {
	s := promoted(t, api.StrategyBlueGreen)
	s.now = s.service("web").Update.KeepUntil
	s.run(3)
	for _, x := range s.running("web") {
		if x.Version != "v2" {
			t.Fatalf("old task %s outlived the keep window", x.ID)
		}
	}
	rb, err := Rollback(*s.service("web"), s.now, "operator")
	if err != nil {
		t.Fatal(err)
	}
	if rb.Update.Weights != nil {
		t.Fatalf("no old version to flip to, yet weights %v", rb.Update.Weights)
	}
	*s.service("web") = rb
	created := 0
	for i := 0; i < 15; i++ {
		s.step()
		created += len(s.last.Create)
		if len(s.last.Create) > 1 {
			t.Fatalf("step %d started %d tasks, parallelism 1", i, len(s.last.Create))
		}
	}
	if created != 3 || !s.service("web").Status.Converged {
		t.Fatalf("%d tasks created by the rolling rollback, status %+v", created, s.service("web").Status)
	}
}

// TestCanarySteps: an operator's step changes the weights only (same spec
// version) and the task counts follow; 100 promotes.
func TestCanarySteps(t *testing.T) {
	s := newSim(t, 3)
	svc := replicated("web", 10)
	svc.Spec.Version = "v1"
	svc.Spec.Update = api.UpdateConfig{Strategy: api.StrategyCanary, CanaryWeight: 10, Keep: api.Duration(time.Minute)}
	s.services = []api.Service{svc}
	s.run(3)
	s.updateSpec("web", func(sp *api.ServiceSpec) { sp.Version = "v2" })
	s.run(4)
	version := s.service("web").SpecVersion
	count := func() (newer, older int) {
		for _, x := range s.liveTasks("web") {
			if x.Version == "v2" {
				newer++
			} else {
				older++
			}
		}
		return newer, older
	}
	for _, step := range []struct {
		weight     uint32
		newN, oldN int
	}{{10, 1, 9}, {50, 5, 5}, {80, 8, 2}} {
		if step.weight != 10 {
			next, err := SetCanaryWeight(*s.service("web"), step.weight, s.now)
			if err != nil {
				t.Fatal(err)
			}
			*s.service("web") = next
			s.run(4)
		}
		svc := s.service("web")
		if svc.SpecVersion != version || svc.Update.Weights["v2"] != step.weight || svc.Update.Weights["v1"] != 100-step.weight {
			t.Fatalf("step %d: spec version %d weights %v", step.weight, svc.SpecVersion, svc.Update.Weights)
		}
		if n, o := count(); n != step.newN || o != step.oldN {
			t.Fatalf("step %d: %d new and %d old tasks, want %d and %d", step.weight, n, o, step.newN, step.oldN)
		}
		if !svc.Status.Converged {
			t.Fatalf("step %d not converged: %+v", step.weight, svc.Status)
		}
	}
	next, err := SetCanaryWeight(*s.service("web"), 100, s.now)
	if err != nil || next.Update.State != api.UpdateUpdating {
		t.Fatalf("100 does not promote: %+v %v", next.Update, err)
	}
	*s.service("web") = next
	s.run(5)
	if u := s.service("web").Update; u.State != api.UpdateCompleted || u.Weights["v2"] != 100 {
		t.Fatalf("after 100: %+v", u)
	}
	if _, err := SetCanaryWeight(*s.service("web"), 20, s.now); err != ErrNotCanary {
		t.Fatalf("a step after promotion: %v", err)
	}
}

// TestCanaryAutomaticSteps: with CanarySteps the canary moves on by itself,
// one interval after each step's tasks are ready, and 100 promotes.
func TestCanaryAutomaticSteps(t *testing.T) {
	s := newSim(t, 3)
	svc := replicated("web", 10)
	svc.Spec.Version = "v1"
	svc.Spec.Update = api.UpdateConfig{Strategy: api.StrategyCanary, CanaryWeight: 10,
		CanarySteps: []uint32{10, 50, 100}, CanaryInterval: api.Duration(30 * time.Second)}
	s.services = []api.Service{svc}
	s.run(3)
	s.updateSpec("web", func(sp *api.ServiceSpec) { sp.Version = "v2" })
	start := s.now
	var seen []string
	last := ""
	for i := 0; i < 120; i++ {
		s.step()
		u := s.service("web").Update
		at := fmt.Sprintf("%s %d%%", u.State, u.Weights["v2"])
		if at != last {
			seen = append(seen, fmt.Sprintf("%s @%ds", at, int(s.now.Sub(start).Seconds())/10*10))
			last = at
		}
	}
	want := []string{"awaiting-promote 10% @0s", "awaiting-promote 50% @30s", "updating 50% @60s", "completed 100% @60s", "completed 0% @90s"}
	if !reflect.DeepEqual(seen, want) {
		t.Fatalf("steps %q, want %q", seen, want)
	}
}

// TestCanaryOldLabelsRebalanced: old tasks with two labels (one a
// rollback's replacement); when a step scales one label's last task down,
// its share goes to the other old label, not to the canary.
func TestCanaryOldLabelsRebalanced(t *testing.T) {
	s := newSim(t, 2)
	svc := replicated("web", 2)
	svc.Spec.Update = api.UpdateConfig{Strategy: api.StrategyCanary, CanaryWeight: 10}
	s.services = []api.Service{svc}
	s.run(3)
	// Slot 2 was replaced under another label, the same template.
	for i := range s.tasks {
		if s.tasks[i].Slot == 2 {
			s.tasks[i].Version = "v9"
		}
	}
	s.updateSpec("web", func(sp *api.ServiceSpec) { sp.Version = "new" })
	s.run(4)
	next, err := SetCanaryWeight(*s.service("web"), 50, s.now)
	if err != nil {
		t.Fatal(err)
	}
	*s.service("web") = next
	s.run(4)
	w := s.service("web").Update.Weights
	old := 0
	for v, x := range w {
		if v != "new" {
			old += int(x)
		}
	}
	if w["new"] != 50 || old != 50 {
		t.Fatalf("weights %v", w)
	}
	for _, x := range s.liveTasks("web") {
		if x.Version != "new" && w[x.Version] == 0 {
			t.Fatalf("old label %s has a live task and no weight: %v", x.Version, w)
		}
	}
	for v, x := range w {
		if v != "new" && x > 0 {
			found := false
			for _, y := range s.liveTasks("web") {
				found = found || y.Version == v
			}
			if !found {
				t.Fatalf("label %s has weight %d and no task: %v", v, x, w)
			}
		}
	}
}
