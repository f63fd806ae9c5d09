package planner

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/orchestrator"
	"github.com/warrenhq/warren/controlplane/raftnode/raftnodetest"
	"github.com/warrenhq/warren/controlplane/store"
)

// raftRollout drives the leader's plan and a stand-in node agent over a
// real three-manager raft cluster, on a virtual clock.
type raftRollout struct {
	t   *testing.T
	c   *raftnodetest.Cluster
	now time.Time
	rnd *rand.Rand
	seq int
}

// apply writes b through the leader and fails the test with raft's or the
// FSM's reason when it is refused.
func (r *raftRollout) apply(b *store.Batch) {
	r.t.Helper()
	if err := r.tryApply(b); err != nil {
		r.t.Fatalf("apply: %v", err)
	}
}

func (r *raftRollout) tryApply(b *store.Batch) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := r.c.Leader(10*time.Second).Node.Apply(ctx, b)
	return err
}

func (r *raftRollout) view() *store.View { return r.c.Leader(10 * time.Second).Store.View() }

func (r *raftRollout) service() api.Service {
	svc, ok := r.view().Service("web")
	if !ok {
		r.t.Fatal("no service web")
	}
	return svc
}

// step is one leader pass and one agent pass, then a second of time.
func (r *raftRollout) step() {
	// As the leader loop does, a plan refused because the state moved under
	// it (a late apply on a loaded machine) is made again from a fresh view.
	for attempt := 0; ; attempt++ {
		v := r.view()
		hbs := map[string]time.Time{"n1": r.now, "n2": r.now}
		res := Plan(Snapshot{Cluster: v.Cluster(), Nodes: v.Nodes(), Services: v.Services(), Tasks: v.Tasks(), Heartbeats: hbs},
			r.now, r.rnd, func() string { r.seq++; return fmt.Sprintf("task%03d", r.seq) })
		if res.Batch == nil {
			break
		}
		res.Batch.Now = r.now
		err := r.tryApply(res.Batch)
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrConflict) || attempt == 4 {
			r.t.Fatalf("apply: %v", err)
		}
	}
	agent := &store.Batch{Now: r.now}
	for _, t := range r.view().Tasks() {
		switch {
		case t.Status.State.Terminal() || t.NodeID == "":
		case t.DesiredState != api.TaskRunning:
			t.Status = api.TaskStatus{State: api.TaskShutdown, Timestamp: r.now}
			agent.PutTasks = append(agent.PutTasks, t)
		case t.Status.State == api.TaskAssigned:
			t.Status = api.TaskStatus{State: api.TaskRunning, Timestamp: r.now, Addr: "10.42.0.9"}
			agent.PutTasks = append(agent.PutTasks, t)
		}
	}
	if len(agent.PutTasks) > 0 {
		r.apply(agent)
	}
	r.now = r.now.Add(time.Second)
}

func (r *raftRollout) until(what string, ok func(api.Service) bool) {
	r.t.Helper()
	for i := 0; i < 30; i++ {
		if ok(r.service()) {
			return
		}
		r.step()
	}
	r.t.Fatalf("%s: not reached; service %+v %+v", what, r.service().Update, r.service().Status)
}

func (r *raftRollout) live(version string) map[string]bool {
	out := map[string]bool{}
	for _, t := range r.view().Tasks() {
		if t.DesiredState == api.TaskRunning && !t.Status.State.Terminal() && t.Spec.Container.Image == version {
			out[t.ID] = true
		}
	}
	return out
}

// TestLeaderKilledMidRolloutResumes: every bit of a rollout's state is in
// raft, so a new leader carries on exactly where the dead one was — here
// in a blue/green keep window, a timed state: the old version stays until
// the recorded KeepUntil and is retired then, with no new rollout started.
func TestLeaderKilledMidRolloutResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-manager raft cluster")
	}
	c := raftnodetest.NewCluster(t, 3, nil)
	c.Form()
	r := &raftRollout{t: t, c: c, now: t0, rnd: rand.New(rand.NewPCG(3, 4))}
	web := service("web", 2, api.UpdateConfig{Strategy: api.StrategyBlueGreen, Parallelism: 1, Keep: api.Duration(time.Minute)})
	web.Generation = 1
	c.ApplyAnywhere(&store.Batch{Now: t0, Cluster: cluster(), PutNodes: []api.Node{worker("n1", t0), worker("n2", t0)},
		PutServices: []api.Service{web}}, 10*time.Second)
	r.until("deployed", func(s api.Service) bool { return s.Status != nil && s.Status.Converged && s.Status.Ready == 2 })

	next := bumped(r.service(), api.StrategyBlueGreen)
	next.Generation++
	next.Update = nil
	c.ApplyAnywhere(&store.Batch{Now: r.now, PutServices: []api.Service{next}}, 10*time.Second)
	r.until("green deployed beside blue", func(s api.Service) bool {
		return s.Update != nil && s.Update.State == api.UpdateAwaitingPromote && s.Status.Converged && s.Status.ObservedGeneration == next.Generation
	})
	promoted := orchestrator.Promote(r.service(), r.now)
	promoted.Generation++
	c.ApplyAnywhere(&store.Batch{Now: r.now, PutServices: []api.Service{promoted}}, 10*time.Second)
	r.until("promoted, blue kept", func(s api.Service) bool {
		return s.Update.State == api.UpdateCompleted && !s.Update.KeepUntil.IsZero()
	})
	before := r.service()
	blue := r.live("demo:1")
	if len(blue) != 2 || len(r.live("demo:2")) != 2 {
		t.Fatalf("keep window: blue %v green %v", blue, r.live("demo:2"))
	}

	lead := c.Leader(10 * time.Second)
	for i, m := range c.Members {
		if m == lead {
			c.Stop(i)
		}
	}
	if c.Leader(10*time.Second) == lead {
		t.Fatal("the killed manager still leads")
	}
	// The new leader, inside the window: nothing moves.
	for i := 0; i < 5; i++ {
		r.step()
	}
	after := r.service()
	if !after.Update.KeepUntil.Equal(before.Update.KeepUntil) || !after.Update.StartedAt.Equal(before.Update.StartedAt) ||
		after.Update.State != api.UpdateCompleted || !reflect.DeepEqual(after.Update.Weights, before.Update.Weights) {
		t.Fatalf("the new leader changed the rollout: before %+v after %+v", before.Update, after.Update)
	}
	if got := r.live("demo:1"); len(got) != 2 {
		t.Fatalf("blue retired before the window ended: %v", got)
	}
	// Once the recorded window is over, the new leader retires blue.
	r.now = before.Update.KeepUntil
	r.until("blue retired at KeepUntil", func(s api.Service) bool {
		return len(r.live("demo:1")) == 0 && s.Update.Weights == nil && s.Update.KeepUntil.IsZero() && s.Status.Converged
	})
	if got := r.service().Update.StartedAt; !got.Equal(before.Update.StartedAt) {
		t.Fatalf("a new rollout started (%v, was %v)", got, before.Update.StartedAt)
	}
}
