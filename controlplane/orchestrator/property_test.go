package orchestrator

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"pgregory.net/rapid"
)

// Applying Results over and over, with an agent that starts and stops tasks
// after random delays and spec changes arriving at random moments, a
// replicated service converges to exactly N running tasks in distinct slots
// 1..N, all of the newest spec; and at no moment are more than N+parallelism
// tasks unfinished (N for stop-first).
func TestReplicatedConvergesRapid(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		nodes := rapid.IntRange(1, 4).Draw(rt, "nodes")
		n := rapid.Uint64Range(1, 6).Draw(rt, "replicas")
		p := rapid.Uint64Range(1, 3).Draw(rt, "parallelism")
		order := rapid.SampledFrom([]string{OrderStopFirst, OrderStartFirst}).Draw(rt, "order")
		delay := time.Duration(rapid.IntRange(0, 3).Draw(rt, "delay")) * time.Second
		updates := rapid.SliceOfN(rapid.IntRange(0, 29), 0, 3).Draw(rt, "update steps")
		holdSeed := rapid.Uint64().Draw(rt, "hold seed")

		s := newSim(t, nodes)
		svc := replicated("web", n)
		svc.Spec.Update = api.UpdateConfig{Parallelism: p, Order: order, Delay: api.Duration(delay)}
		s.services = []api.Service{svc}
		hr := rand.New(rand.NewPCG(holdSeed, 7))
		s.hold = func(*api.Task) bool { return hr.IntN(3) == 0 }

		limit := int(n + p)
		if order == OrderStopFirst {
			limit = int(n)
		}
		// Start-first never leaves a slot without a running task once it
		// had one: the old task is stopped only after its successor runs.
		served := map[uint64]bool{}
		check := func(step int) {
			if order == OrderStartFirst {
				running := map[uint64]bool{}
				for _, x := range s.tasks {
					if x.Status.State == api.TaskRunning {
						running[x.Slot] = true
					}
				}
				for slot := range served {
					if !running[slot] {
						rt.Fatalf("step %d: slot %d lost its last running task", step, slot)
					}
				}
				for slot := range running {
					served[slot] = true
				}
			}
			if u := s.unfinished("web"); u > limit {
				rt.Fatalf("step %d: %d unfinished tasks, limit %d (N=%d p=%d %s)", step, u, limit, n, p, order)
			}
			perSlot := map[uint64]int{}
			for _, x := range s.liveTasks("web") {
				perSlot[x.Slot]++
				if x.Slot < 1 || x.Slot > n {
					rt.Fatalf("step %d: live task in slot %d of %d", step, x.Slot, n)
				}
				if perSlot[x.Slot] > 2 {
					rt.Fatalf("step %d: slot %d has %d live tasks", step, x.Slot, perSlot[x.Slot])
				}
			}
		}
		// rollout says whether the last spec change found live tasks of an
		// older spec: then a rollout must open and finish. (The API resets
		// Update to nil on a spec change; a change that finds nothing to
		// replace opens no rollout.)
		rollout := false
		for step := 0; step < 30; step++ {
			for _, u := range updates {
				if u == step {
					rollout = len(s.liveTasks("web")) > 0
					s.updateSpec("web", nil)
				}
			}
			s.step()
			check(step)
		}
		s.hold = nil
		for step := 30; step < 120; step++ {
			s.step()
			check(step)
		}

		final := s.service("web")
		run := s.running("web")
		if uint64(len(run)) != n || s.unfinished("web") != int(n) {
			rt.Fatalf("converged to %d running, %d unfinished; want %d", len(run), s.unfinished("web"), n)
		}
		for i, x := range run {
			if x.Slot != uint64(i+1) {
				rt.Fatalf("slots not 1..%d: %v", n, slotsOf(run))
			}
			if x.SpecVersion != final.SpecVersion {
				rt.Fatalf("slot %d runs spec %d, service is at %d", x.Slot, x.SpecVersion, final.SpecVersion)
			}
		}
		if rollout && final.Update == nil || final.Update != nil && final.Update.State != api.UpdateCompleted {
			rt.Fatalf("update status %+v", final.Update)
		}
		if r := Reconcile(s.state(), s.ids); !r.Empty() {
			rt.Fatalf("converged state still produces work: %+v", r)
		}
	})
}

// Reconcile is a function of its inputs: the same snapshot gives the same
// Result, and it never modifies the snapshot it was given.
func TestReconcileDeterministicRapid(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		s := newSim(t, rapid.IntRange(1, 4).Draw(rt, "nodes"))
		s.services = []api.Service{replicated("web", rapid.Uint64Range(0, 5).Draw(rt, "replicas")), global("mon")}
		s.run(rapid.IntRange(0, 4).Draw(rt, "warmup"))
		if rapid.Bool().Draw(rt, "update") {
			s.updateSpec("web", nil)
		}
		if rapid.Bool().Draw(rt, "cut") {
			s.cut["n1"] = true
			s.now = s.now.Add(time.Minute)
		}
		st := s.state()
		snapshot := s.state()
		seq := 0
		ids := func() string { seq++; return "x" + string(rune('a'+seq)) }
		a := Reconcile(st, ids)
		seq = 0
		b := Reconcile(st, ids)
		if !reflect.DeepEqual(a, b) {
			rt.Fatalf("two runs differ:\n%+v\n%+v", a, b)
		}
		if !reflect.DeepEqual(st, snapshot) {
			rt.Fatal("Reconcile modified its input")
		}
	})
}
