package orchestrator

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// The disconnect policy, one Reconcile pass per case. n2 ran the original
// of slot 1 ("orig") and was cut off at cut; n1 stayed. Each case says
// where the cut stands (still down, or back), what was placed meanwhile
// and what the original did, and what the pass must write.
func TestDisconnectPolicy(t *testing.T) {
	cut := t0
	const nodeDown = 10 * time.Second
	grace := func(d time.Duration) *api.Grace { g := api.Grace(d); return &g }
	forever := api.GraceForever
	type tc struct {
		name   string
		mode   api.ServiceMode
		policy api.DisconnectPolicy
		at     time.Duration // now, after the cut
		back   bool          // n2 is ready again (heartbeating since now)
		drain  bool          // n2 was drained while away
		// orig is the original's status as the store has it at now.
		orig func(*api.TaskStatus)
		// repl, when set, is the replacement made while n2 was away.
		repl *api.TaskStatus
		// updated: the service's task template changed while n2 was away;
		// the replacement (if any) runs the new one.
		updated bool
		want    func(t *testing.T, r Result)
	}
	running := api.TaskStatus{State: api.TaskRunning, Addr: "10.42.1.5", PID: 200, Timestamp: cut.Add(time.Minute)}
	pending := api.TaskStatus{State: api.TaskPending, Message: "0/2 nodes: 1 down, 1 insufficient memory"}
	cases := []tc{
		{name: "cut, inside the grace: nothing, woken when it ends", policy: api.DisconnectPolicy{Grace: grace(time.Minute)}, at: 30 * time.Second,
			want: func(t *testing.T, r Result) {
				noTaskWrites(t, r)
				if r.NextEval.IsZero() || r.NextEval.After(cut.Add(time.Minute)) {
					t.Errorf("next eval %v, want by the end of the grace %v", r.NextEval, cut.Add(time.Minute))
				}
				// It fills its slot but takes no traffic: not ready, not converged.
				if len(r.Statuses) != 1 || r.Statuses[0].Status.Ready != 0 || r.Statuses[0].Status.Desired != 1 || r.Statuses[0].Status.Converged {
					t.Errorf("statuses %+v, want web 0/1 ready, not converged", r.Statuses)
				}
			}},
		{name: "just marked down: the original is unknown, still desired running", policy: api.DisconnectPolicy{Grace: grace(time.Minute)}, at: 30 * time.Second,
			orig: func(st *api.TaskStatus) { st.State = api.TaskRunning },
			want: func(t *testing.T, r Result) {
				if len(r.Update) != 1 || r.Update[0].ID != "orig" || r.Update[0].Status.State != api.TaskUnknown ||
					r.Update[0].DesiredState != api.TaskRunning || r.Update[0].Status.Addr == "" {
					t.Errorf("updated %+v, want orig unknown, desired running, its address kept", r.Update)
				}
				wantCreate(t, r, 0)
			}},
		{name: "back, not said yet, the replacement never placed: dropped before it starts next to the original", at: time.Hour, back: true, repl: &pending,
			orig: func(st *api.TaskStatus) { st.State = api.TaskUnknown },
			want: func(t *testing.T, r Result) {
				notWritten(t, r, "orig")
				if len(r.Delete) != 1 || r.Delete[0].ID != "repl" {
					t.Errorf("deleted %v, want the unplaced repl", taskIDs(r.Delete))
				}
			}},
		{name: "back, the node has not said yet what became of the original: nothing stopped", at: time.Hour, back: true, repl: &running,
			orig: func(st *api.TaskStatus) { st.State = api.TaskUnknown },
			want: func(t *testing.T, r Result) { noTaskWrites(t, r) }},
		{name: "cut, past the grace: a replacement, the original left alone", policy: api.DisconnectPolicy{Grace: grace(time.Minute)}, at: 2 * time.Minute,
			want: func(t *testing.T, r Result) {
				wantCreate(t, r, 1)
				notWritten(t, r, "orig")
			}},
		{name: "default grace is the node-down grace: replaced once down", at: nodeDown + time.Second,
			want: func(t *testing.T, r Result) { wantCreate(t, r, 1); notWritten(t, r, "orig") }},
		{name: "grace 0: replaced once down", policy: api.DisconnectPolicy{Grace: grace(0)}, at: nodeDown + time.Second,
			want: func(t *testing.T, r Result) { wantCreate(t, r, 1) }},
		{name: "grace inf: not replaced after 24h", policy: api.DisconnectPolicy{Grace: &forever}, at: 24 * time.Hour,
			want: func(t *testing.T, r Result) { noTaskWrites(t, r) }},
		{name: "global, default grace inf: kept on the down node, not removed", mode: api.ModeGlobal, at: 24 * time.Hour,
			want: func(t *testing.T, r Result) { noTaskWrites(t, r) }},
		{name: "global, updated while away: the live node rolls, the away node's task waits and holds nothing up", mode: api.ModeGlobal, at: time.Hour, updated: true,
			want: func(t *testing.T, r Result) {
				notWritten(t, r, "orig")
				wantStopped(t, r, "g1", "")
				var st *api.ServiceStatus
				for _, s := range append(r.Services, r.Statuses...) {
					st = s.Status
				}
				if st == nil || st.Desired != 1 {
					t.Errorf("status %+v, want 1 slot desired (the down node's not counted)", st)
				}
			}},
		{name: "global, back after the update: its old task is replaced", mode: api.ModeGlobal, at: time.Hour, back: true, updated: true,
			want: func(t *testing.T, r Result) { wantStopped(t, r, "orig", "") }},
		{name: "global, back after 24h: nothing happens", mode: api.ModeGlobal, at: 24 * time.Hour, back: true,
			want: func(t *testing.T, r Result) { noTaskWrites(t, r) }},
		{name: "back inside the grace, no replacement: nothing happens", policy: api.DisconnectPolicy{Grace: grace(time.Hour)}, at: 30 * time.Minute, back: true,
			want: func(t *testing.T, r Result) { noTaskWrites(t, r) }},
		{name: "back, replacement running, keep-original: the replacement stops", at: 24 * time.Hour, back: true, repl: &running,
			want: func(t *testing.T, r Result) {
				notWritten(t, r, "orig")
				wantStopped(t, r, "repl", "reconcile keep-original: the slot keeps task orig on node n2")
				wantCreate(t, r, 0)
			}},
		{name: "back, replacement never placed, keep-original: it is deleted, the original untouched", at: 30 * time.Minute, back: true, repl: &pending,
			want: func(t *testing.T, r Result) {
				notWritten(t, r, "orig")
				if len(r.Delete) != 1 || r.Delete[0].ID != "repl" {
					t.Errorf("deleted %v, want repl", taskIDs(r.Delete))
				}
			}},
		{name: "back, original rebooted offline (new container and pid), keep-original: adopted", at: 2 * time.Hour, back: true, repl: &running,
			orig: func(st *api.TaskStatus) {
				st.ContainerID, st.PID, st.Timestamp = "c-after-reboot", 4242, cut.Add(time.Hour)
			},
			want: func(t *testing.T, r Result) { notWritten(t, r, "orig"); wantStopped(t, r, "repl", "keep-original") }},
		{name: "back, original crashed for good while away: the replacement stays", at: time.Hour, back: true, repl: &running,
			orig: func(st *api.TaskStatus) { st.State, st.Err = api.TaskFailed, "exit 1" },
			want: func(t *testing.T, r Result) {
				notWritten(t, r, "repl")
				wantCreate(t, r, 0)
			}},
		{name: "back, original crashed and restarted locally, keep-original: still the original", at: time.Hour, back: true, repl: &running,
			orig: func(st *api.TaskStatus) { st.Restarts, st.PID = 1, 300 },
			want: func(t *testing.T, r Result) { notWritten(t, r, "orig"); wantStopped(t, r, "repl", "keep-original") }},
		{name: "back, keep-replacement: the original stops", policy: api.DisconnectPolicy{Reconcile: api.ReconcileKeepReplacement}, at: time.Hour, back: true, repl: &running,
			want: func(t *testing.T, r Result) {
				notWritten(t, r, "repl")
				wantStopped(t, r, "orig", "reconcile keep-replacement: the slot keeps task repl on node n1")
			}},
		{name: "back, healthiest, original unhealthy: the original stops", policy: api.DisconnectPolicy{Reconcile: api.ReconcileHealthiest}, at: time.Hour, back: true, repl: &running,
			orig: func(st *api.TaskStatus) { st.Health = api.HealthUnhealthy },
			want: func(t *testing.T, r Result) { wantStopped(t, r, "orig", "healthiest") }},
		{name: "back, healthiest, both healthy: the original stays", policy: api.DisconnectPolicy{Reconcile: api.ReconcileHealthiest}, at: time.Hour, back: true, repl: &running,
			want: func(t *testing.T, r Result) { notWritten(t, r, "orig"); wantStopped(t, r, "repl", "healthiest") }},
		{name: "back, longest-running, original restarted while away: the replacement stays", policy: api.DisconnectPolicy{Reconcile: api.ReconcileLongestRunning}, at: time.Hour, back: true, repl: &running,
			orig: func(st *api.TaskStatus) { st.Restarts = 1 },
			want: func(t *testing.T, r Result) { notWritten(t, r, "repl"); wantStopped(t, r, "orig", "longest-running") }},
		{name: "back, longest-running, original untouched: the original stays", policy: api.DisconnectPolicy{Reconcile: api.ReconcileLongestRunning}, at: time.Hour, back: true, repl: &running,
			orig: func(st *api.TaskStatus) { st.Timestamp = cut.Add(-time.Hour) },
			want: func(t *testing.T, r Result) { notWritten(t, r, "orig"); wantStopped(t, r, "repl", "longest-running") }},
		{name: "drained while away: the original is asked to stop, the slot refilled at once", at: 30 * time.Second, drain: true,
			policy: api.DisconnectPolicy{Grace: grace(time.Hour)},
			want: func(t *testing.T, r Result) {
				wantStopped(t, r, "orig", "")
				wantCreate(t, r, 1)
			}},
		{name: "updated while away, inside the grace: nothing starts before the node returns", at: 30 * time.Second, updated: true,
			policy: api.DisconnectPolicy{Grace: grace(time.Hour)},
			want:   func(t *testing.T, r Result) { wantCreate(t, r, 0) }},
		{name: "updated while away, back with the old spec next to a new replacement: the old one stops", at: time.Hour, back: true, updated: true, repl: &running,
			want: func(t *testing.T, r Result) { notWritten(t, r, "repl"); wantStopped(t, r, "orig", "") }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			now := cut.Add(c.at)
			svc := replicated("web", 1)
			if c.mode == api.ModeGlobal {
				svc = global("web")
			}
			pol := c.policy
			svc.Spec.Disconnect = &pol
			n1 := api.Node{ID: "n1", Spec: api.NodeSpec{Role: api.RoleWorker, Availability: api.AvailabilityActive},
				Status: api.NodeStatus{State: api.NodeReady, Heartbeat: now, Capacity: api.Resources{NanoCPUs: 4e9, MemoryBytes: 4 << 30}}}
			n2 := n1
			n2.ID = "n2"
			n2.Status.State, n2.Status.Heartbeat = api.NodeDown, cut
			if c.back {
				n2.Status.State, n2.Status.Heartbeat = api.NodeReady, now
			}
			if c.drain {
				n2.Spec.Availability = api.AvailabilityDrain
			}
			orig := api.Task{ID: "orig", ServiceID: "web", ServiceName: "web", Slot: 1, NodeID: "n2", Spec: svc.Spec.Task,
				SpecVersion: 1, Version: "v1", DesiredState: api.TaskRunning, Status: running,
				Meta: api.Meta{Version: 1, CreatedAt: cut.Add(-time.Hour)}}
			orig.Status.Timestamp = cut.Add(-time.Hour)
			if !c.back {
				// As the pass that marked n2 down left it.
				orig.Status.State = api.TaskUnknown
			}
			if c.mode == api.ModeGlobal {
				orig.Slot = 0
			}
			if c.orig != nil {
				c.orig(&orig.Status)
			}
			// The store marks a task its returned node reported again.
			orig.Rejoined = c.back && orig.Status.State != api.TaskUnknown
			if c.updated {
				svc.Spec.Task.Container.Image = "demo:2"
				svc.SpecVersion = 2
			}
			tasks := []api.Task{orig}
			if c.mode == api.ModeGlobal {
				g1 := orig
				g1.ID, g1.NodeID = "g1", "n1"
				tasks = append(tasks, g1)
			}
			if c.repl != nil {
				repl := api.Task{ID: "repl", ServiceID: "web", ServiceName: "web", Slot: 1, NodeID: "n1", Spec: svc.Spec.Task,
					SpecVersion: svc.SpecVersion, Version: versionLabel(&svc), DesiredState: api.TaskRunning, Status: *c.repl,
					Meta: api.Meta{Version: 2, CreatedAt: cut.Add(nodeDown)}}
				repl.Status.Addr = "10.42.0.9"
				if c.repl.State == api.TaskPending {
					repl.NodeID, repl.Status.Addr = "", ""
				}
				tasks = append(tasks, repl)
			}
			n := 0
			r := Reconcile(ClusterState{Now: now, Cluster: api.Cluster{NodeDownGrace: api.Duration(nodeDown)},
				Nodes: []api.Node{n1, n2}, Services: []api.Service{svc}, Tasks: tasks},
				func() string { n++; return fmt.Sprintf("new%d", n) })
			if len(r.NodesDown) != 0 {
				t.Errorf("nodes marked down %v: the fixture's are already", r.NodesDown)
			}
			c.want(t, r)
		})
	}
}

func taskIDs(ts []api.Task) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.ID)
	}
	return out
}

// settledOnly: an update that changes nothing of the task but clears its
// rejoin mark, once the policy decided its slot.
func settledOnly(u api.Task) bool {
	return u.DesiredState == api.TaskRunning && u.StopReason == "" && u.Status.State != api.TaskUnknown && !u.Rejoined
}

func noTaskWrites(t *testing.T, r Result) {
	t.Helper()
	var upd []api.Task
	for _, u := range r.Update {
		if !settledOnly(u) {
			upd = append(upd, u)
		}
	}
	r.Update = upd
	if len(r.Create)+len(r.Update)+len(r.Delete) > 0 {
		t.Errorf("created %v, updated %v, deleted %v; want no task written", taskIDs(r.Create), taskIDs(r.Update), taskIDs(r.Delete))
	}
}

// notWritten: task id is neither deleted nor changed, but for the rejoin
// mark the decision of its slot clears.
func notWritten(t *testing.T, r Result, id string) {
	t.Helper()
	for _, u := range r.Update {
		if u.ID == id && settledOnly(u) {
			return
		}
	}
	for _, u := range append(r.Update, r.Delete...) {
		if u.ID == id {
			t.Errorf("task %s written: %s/%s (%s)", id, u.Status.State, u.DesiredState, u.StopReason)
		}
	}
}

func wantCreate(t *testing.T, r Result, n int) {
	t.Helper()
	if len(r.Create) != n {
		t.Errorf("created %v, want %d", taskIDs(r.Create), n)
	}
}

// wantStopped: task id is asked to stop, and its StopReason contains why.
func wantStopped(t *testing.T, r Result, id, why string) {
	t.Helper()
	for _, u := range r.Update {
		if u.ID != id {
			continue
		}
		if u.DesiredState.Before(api.TaskShutdown) {
			t.Errorf("task %s desired %s, want it stopped", id, u.DesiredState)
		}
		if !strings.Contains(u.StopReason, why) {
			t.Errorf("task %s stop reason %q, want it to say %q", id, u.StopReason, why)
		}
		return
	}
	t.Errorf("task %s not stopped; updated %v", id, taskIDs(r.Update))
}

// TestDuplicateWithoutRejoinKeepsTheBest: two live tasks of one slot that
// no returning node made (a replacement of an unhealthy task, a start-first
// step) keep the ready, newest one whatever the reconcile policy; only a
// rejoined original is kept by keep-original.
func TestDuplicateWithoutRejoinKeepsTheBest(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	svc := replicated("web", 1)
	n1 := api.Node{ID: "n1", Spec: api.NodeSpec{Role: api.RoleWorker, Availability: api.AvailabilityActive},
		Status: api.NodeStatus{State: api.NodeReady, Heartbeat: now, Capacity: api.Resources{NanoCPUs: 4e9, MemoryBytes: 4 << 30}}}
	task := func(id string, created time.Time, health api.HealthState) api.Task {
		return api.Task{ID: id, ServiceID: "web", ServiceName: "web", Slot: 1, NodeID: "n1", Spec: svc.Spec.Task,
			SpecVersion: svc.SpecVersion, Version: versionLabel(&svc), DesiredState: api.TaskRunning,
			Status: api.TaskStatus{State: api.TaskRunning, Addr: "10.42.0." + id[len(id)-1:], PID: 100, Health: health, Timestamp: created},
			Meta:   api.Meta{Version: 1, CreatedAt: created}}
	}
	for _, c := range []struct {
		name     string
		rejoined bool
		stopped  string
	}{
		{"no rejoin: the ready newer task is kept", false, "old1"},
		{"rejoined original: keep-original keeps it", true, "new2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			old := task("old1", now.Add(-time.Hour), api.HealthUnhealthy)
			old.Rejoined = c.rejoined
			nw := task("new2", now.Add(-time.Minute), api.HealthHealthy)
			r := Reconcile(ClusterState{Now: now, Nodes: []api.Node{n1}, Services: []api.Service{svc}, Tasks: []api.Task{old, nw}},
				func() string { return "x" })
			var stopped []string
			for _, u := range r.Update {
				if u.DesiredState == api.TaskShutdown {
					stopped = append(stopped, u.ID)
				}
			}
			if len(stopped) != 1 || stopped[0] != c.stopped {
				t.Errorf("stopped %v, want [%s]", stopped, c.stopped)
			}
			for _, u := range r.Update {
				if u.Rejoined {
					t.Errorf("task %s still marked rejoined after the policy decided its slot", u.ID)
				}
			}
		})
	}
}
