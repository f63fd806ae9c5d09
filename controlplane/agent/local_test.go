package agent

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

var lt0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// table builds assignments for node "me": web (v1) with the given
// backends, written "task@node=addr/health" (health a, t or u), and a task
// of this node, desired running, for each of its backends.
func table(index uint64, backends ...string) *api.Assignments {
	a := &api.Assignments{Index: index, NodeID: "me"}
	g := api.VersionGroup{Version: "v1", Weight: 100}
	for _, spec := range backends {
		id, rest, _ := strings.Cut(spec, "@")
		node, rest, _ := strings.Cut(rest, "=")
		addr, h, _ := strings.Cut(rest, "/")
		health := map[string]api.BackendHealth{"a": api.BackendActive, "t": api.BackendTerminating, "u": api.BackendUnhealthy}[h]
		g.Backends = append(g.Backends, api.Backend{TaskID: id, NodeID: node, Addr: addr, Health: health})
		if node == "me" {
			a.Tasks = append(a.Tasks, ltask(id, api.TaskRunning, addr))
		}
	}
	a.Services = []api.ServiceEndpoints{{ServiceID: "web", Name: "web", Groups: []api.VersionGroup{g}}}
	return a
}

func ltask(id string, desired api.TaskState, addr string) api.Task {
	return api.Task{ID: id, ServiceID: "web", ServiceName: "web", NodeID: "me", Version: "v1", SpecVersion: 1,
		DesiredState: desired, Status: api.TaskStatus{State: api.TaskRunning, Addr: addr}}
}

func runs(addr string) api.TaskStatus { return api.TaskStatus{State: api.TaskRunning, Addr: addr} }

// backends renders a table as "task@node=addr/health" sorted, for compare.
func backends(a *api.Assignments) string {
	var out []string
	for _, s := range a.Services {
		for _, g := range s.Groups {
			for _, b := range g.Backends {
				out = append(out, fmt.Sprintf("%s@%s=%s/%s", b.TaskID, b.NodeID, b.Addr, string(b.Health)[:1]))
			}
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func desired(a *api.Assignments) string {
	var out []string
	for _, t := range a.Tasks {
		out = append(out, t.ID+":"+string(t.DesiredState))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func TestEffective(t *testing.T) {
	silent := PeerHealth{Since: lt0.Add(-time.Minute), LastOK: lt0.Add(-3 * time.Second)}
	fine := PeerHealth{Since: lt0.Add(-time.Minute), LastOK: lt0.Add(-time.Second)}
	never := PeerHealth{Since: lt0.Add(-3 * time.Second)}
	neverYet := PeerHealth{Since: lt0.Add(-time.Second)}
	local := map[string]api.TaskStatus{"l1": runs("10.42.2.2"), "l2": runs("10.42.2.3")}
	cases := []struct {
		name      string
		last      *api.Assignments
		tasks     map[string]api.TaskStatus
		peers     map[string]PeerHealth
		atCut     *api.Assignments
		want      string // backends
		tasksWant string // desired states handed to the executor ("" = as last)
	}{
		{name: "a silent peer's backends leave the table",
			last:  table(5, "l1@me=10.42.2.2/a", "r1@n1=10.42.1.2/a", "r2@n1=10.42.1.3/a"),
			tasks: map[string]api.TaskStatus{"l1": runs("10.42.2.2")}, peers: map[string]PeerHealth{"n1": silent},
			want: "l1@me=10.42.2.2/a r1@n1=10.42.1.2/u r2@n1=10.42.1.3/u"},
		{name: "they come back when it answers again",
			last:  table(5, "l1@me=10.42.2.2/a", "r1@n1=10.42.1.2/a"),
			tasks: map[string]api.TaskStatus{"l1": runs("10.42.2.2")}, peers: map[string]PeerHealth{"n1": fine},
			want: "l1@me=10.42.2.2/a r1@n1=10.42.1.2/a"},
		{name: "a peer that never answered is judged from when probing began",
			last:  table(5, "r1@n1=10.42.1.2/a", "r3@n3=10.42.3.2/a"),
			peers: map[string]PeerHealth{"n1": never, "n3": neverYet},
			want:  "r1@n1=10.42.1.2/u r3@n3=10.42.3.2/a"},
		{name: "a node nobody probes is not judged",
			last: table(5, "r1@n1=10.42.1.2/a"),
			want: "r1@n1=10.42.1.2/a"},
		{name: "a silent peer's terminating backend stays terminating",
			last: table(5, "r1@n1=10.42.1.2/t"), peers: map[string]PeerHealth{"n1": silent},
			want: "r1@n1=10.42.1.2/t"},
		{name: "a task restarted locally is in the table at its new address",
			last:  table(5, "l1@me=10.42.2.2/a", "l2@me=10.42.2.3/a"),
			tasks: map[string]api.TaskStatus{"l1": runs("10.42.2.9"), "l2": runs("10.42.2.3")},
			want:  "l1@me=10.42.2.9/a l2@me=10.42.2.3/a"},
		{name: "a local task that does not run gets no traffic",
			last:  table(5, "l1@me=10.42.2.2/a", "l2@me=10.42.2.3/a"),
			tasks: map[string]api.TaskStatus{"l1": {State: api.TaskStarting, Addr: "10.42.2.2"}},
			want:  "l1@me=10.42.2.2/u l2@me=10.42.2.3/u"},
		{name: "a local task that became healthy while cut off takes traffic",
			last:  table(5, "l1@me=10.42.2.2/u"),
			tasks: map[string]api.TaskStatus{"l1": {State: api.TaskRunning, Addr: "10.42.2.2", Health: api.HealthHealthy}},
			want:  "l1@me=10.42.2.2/a"},
		{name: "a local task failing its health check does not",
			last:  table(5, "l1@me=10.42.2.2/a"),
			tasks: map[string]api.TaskStatus{"l1": {State: api.TaskRunning, Addr: "10.42.2.2", Health: api.HealthUnhealthy}},
			want:  "l1@me=10.42.2.2/u"},
		{name: "a drain the managers began holds: terminating stays terminating",
			last: table(5, "l1@me=10.42.2.2/t", "l2@me=10.42.2.3/a"), tasks: local,
			want: "l1@me=10.42.2.2/t l2@me=10.42.2.3/a"},
		{name: "a local task running but in no table yet is added",
			last: func() *api.Assignments {
				a := table(5, "l1@me=10.42.2.2/a")
				a.Tasks = append(a.Tasks, ltask("l2", api.TaskRunning, ""))
				return a
			}(),
			tasks: local, want: "l1@me=10.42.2.2/a l2@me=10.42.2.3/a"},
		{name: "but not a task the managers want stopped",
			last: func() *api.Assignments {
				a := table(5, "l1@me=10.42.2.2/a")
				a.Tasks = append(a.Tasks, ltask("l2", api.TaskShutdown, ""))
				return a
			}(),
			tasks: local, want: "l1@me=10.42.2.2/a", tasksWant: "l1:running l2:shutdown"},
		{name: "a rejoin's stop is held: the task runs and serves until the node decides with the managers",
			last: func() *api.Assignments {
				// The managers orphaned l1 and l2 while the node was away:
				// terminal, so in no table, and desired shutdown.
				a := table(9, "r1@n1=10.42.1.2/a", "r5@n1=10.42.1.5/a")
				o1, o2 := ltask("l1", api.TaskShutdown, "10.42.2.2"), ltask("l2", api.TaskShutdown, "10.42.2.3")
				o1.Status.State, o2.Status.State = api.TaskOrphaned, api.TaskOrphaned
				a.Tasks = []api.Task{o1, o2}
				return a
			}(),
			atCut: table(5, "l1@me=10.42.2.2/a", "l2@me=10.42.2.3/a", "r1@n1=10.42.1.2/a"),
			tasks: local, peers: map[string]PeerHealth{"n1": silent},
			want:      "l1@me=10.42.2.2/a l2@me=10.42.2.3/a r1@n1=10.42.1.2/u r5@n1=10.42.1.5/u",
			tasksWant: "l1:running l2:running"},
		{name: "a rejoin's stop of a task no longer listed is held too",
			last:      table(9, "r1@n1=10.42.1.2/a"),
			atCut:     table(5, "l1@me=10.42.2.2/a", "r1@n1=10.42.1.2/a"),
			tasks:     map[string]api.TaskStatus{"l1": runs("10.42.2.2")},
			peers:     map[string]PeerHealth{"n1": fine},
			want:      "l1@me=10.42.2.2/a r1@n1=10.42.1.2/a",
			tasksWant: "l1:running"},
		{name: "a rejoin drained by the managers stays terminating",
			last: func() *api.Assignments {
				a := table(9, "l1@me=10.42.2.2/t", "r1@n1=10.42.1.2/a")
				a.Tasks[0].DesiredState = api.TaskShutdown
				return a
			}(),
			atCut:     table(5, "l1@me=10.42.2.2/a", "r1@n1=10.42.1.2/a"),
			tasks:     map[string]api.TaskStatus{"l1": runs("10.42.2.2")},
			want:      "l1@me=10.42.2.2/t r1@n1=10.42.1.2/a",
			tasksWant: "l1:running"},
		{name: "a task that died during the cut is not held",
			last:      table(9, "r1@n1=10.42.1.2/a"),
			atCut:     table(5, "l1@me=10.42.2.2/a", "r1@n1=10.42.1.2/a"),
			tasks:     map[string]api.TaskStatus{"l1": {State: api.TaskFailed}},
			want:      "r1@n1=10.42.1.2/a",
			tasksWant: ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := backends(c.last)
			got := Effective(c.last, Local{Now: lt0, Tasks: c.tasks, Peers: c.peers, PeerDown: 2 * time.Second, AtCut: c.atCut})
			if b := backends(got); b != c.want {
				t.Errorf("backends\n got %s\nwant %s", b, c.want)
			}
			want := c.tasksWant
			if want == "" && c.atCut == nil {
				want = desired(c.last)
			}
			if d := desired(got); d != want {
				t.Errorf("tasks handed to the executor\n got %s\nwant %s", d, want)
			}
			if got.Index != c.last.Index {
				t.Errorf("index %d, want last's %d", got.Index, c.last.Index)
			}
			if after := backends(c.last); after != before {
				t.Errorf("Effective changed its input: %s → %s", before, after)
			}
		})
	}
	if Effective(nil, Local{Now: lt0}) != nil {
		t.Error("Effective(nil) is not nil")
	}
}

func TestFresh(t *testing.T) {
	orphan := ltask("l3", api.TaskShutdown, "10.42.2.4")
	orphan.Status.State = api.TaskOrphaned
	last := table(5, "l1@me=10.42.2.2/a", "l2@me=10.42.2.3/a")
	last.Tasks = append(last.Tasks, orphan)
	cases := []struct {
		name  string
		local map[string]api.TaskStatus
		want  bool
	}{
		{"every report is on the managers' books", map[string]api.TaskStatus{"l1": runs("10.42.2.2"), "l2": runs("10.42.2.3")}, true},
		{"a restart's new address is not yet", map[string]api.TaskStatus{"l1": runs("10.42.2.9"), "l2": runs("10.42.2.3")}, false},
		{"a crash is not yet", map[string]api.TaskStatus{"l1": {State: api.TaskFailed}}, false},
		{"a task the managers ended is theirs to judge", map[string]api.TaskStatus{"l3": runs("10.42.2.7")}, true},
		{"a task the runtime never reported is not waited for", map[string]api.TaskStatus{}, true},
	}
	for _, c := range cases {
		if got := Fresh(last, c.local); got != c.want {
			t.Errorf("%s: Fresh = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestPeersAnswer(t *testing.T) {
	silent := PeerHealth{Since: lt0.Add(-time.Minute), LastOK: lt0.Add(-3 * time.Second)}
	fine := PeerHealth{Since: lt0.Add(-time.Minute), LastOK: lt0}
	cases := []struct {
		name  string
		last  *api.Assignments
		peers map[string]PeerHealth
		want  bool
	}{
		{"every peer with an active backend answers", table(5, "l1@me=10.42.2.2/a", "r1@n1=10.42.1.2/a"), map[string]PeerHealth{"n1": fine}, true},
		{"one does not", table(5, "r1@n1=10.42.1.2/a", "r3@n3=10.42.3.2/a"), map[string]PeerHealth{"n1": fine, "n3": silent}, false},
		{"a silent peer with only a terminating backend does not matter", table(5, "r1@n1=10.42.1.2/t"), map[string]PeerHealth{"n1": silent}, true},
		{"this node's own backends are not probed", table(5, "l1@me=10.42.2.2/a"), map[string]PeerHealth{"me": silent}, true},
		{"an unprobed node is not judged", table(5, "r1@n1=10.42.1.2/a"), nil, true},
	}
	for _, c := range cases {
		if got := PeersAnswer(c.last, Local{Now: lt0, Peers: c.peers, PeerDown: 2 * time.Second}); got != c.want {
			t.Errorf("%s: PeersAnswer = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestAutonomy walks the node through cuts: each step is an event at a
// time offset and the state the node must then be in.
func TestAutonomy(t *testing.T) {
	type step struct {
		at             time.Duration
		do             string // "answer", "receive", "step"
		fresh, peersOK bool
		want           autonomyEvent
		local          bool
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"answers in time: the managers decide", []step{
			{at: 0, do: "answer"}, {at: 4 * time.Second, do: "step", want: autonomyNone},
			{at: 4 * time.Second, do: "answer"}, {at: 8 * time.Second, do: "step", want: autonomyNone},
		}},
		{"silent past CutAfter: the node decides, and goes on while silent", []step{
			{at: 0, do: "answer"}, {at: 5 * time.Second, do: "step", want: autonomyNone},
			{at: 5001 * time.Millisecond, do: "step", want: autonomyCut, local: true},
			{at: time.Minute, do: "step", want: autonomyNone, local: true},
		}},
		{"back: the node decides until the managers' table is fresh and its peers answer", []step{
			{at: 0, do: "answer"}, {at: 6 * time.Second, do: "step", want: autonomyCut, local: true},
			{at: 30 * time.Second, do: "answer"},
			{at: 30 * time.Second, do: "step", fresh: true, peersOK: true, want: autonomyNone, local: true}, // nothing received since
			{at: 31 * time.Second, do: "receive"},
			{at: 31 * time.Second, do: "step", fresh: false, peersOK: true, want: autonomyNone, local: true},
			{at: 32 * time.Second, do: "step", fresh: true, peersOK: false, want: autonomyNone, local: true},
			{at: 32 * time.Second, do: "answer"},
			{at: 33 * time.Second, do: "step", fresh: true, peersOK: true, want: autonomyBack},
			{at: 34 * time.Second, do: "step", fresh: true, peersOK: true, want: autonomyNone},
		}},
		{"back but never synced: the managers win after Handover", []step{
			{at: 0, do: "answer"}, {at: 6 * time.Second, do: "step", want: autonomyCut, local: true},
			{at: 30 * time.Second, do: "answer"}, {at: 31 * time.Second, do: "receive"},
			{at: 33 * time.Second, do: "answer"}, {at: 36 * time.Second, do: "answer"},
			{at: 39 * time.Second, do: "step", fresh: false, want: autonomyNone, local: true},
			{at: 39 * time.Second, do: "answer"},
			{at: 40 * time.Second, do: "step", fresh: false, want: autonomyBack},
		}},
		{"answered once, then silent again: still cut off, the handover starts over", []step{
			{at: 0, do: "answer"}, {at: 6 * time.Second, do: "step", want: autonomyCut, local: true},
			{at: 30 * time.Second, do: "answer"},
			{at: 36 * time.Second, do: "step", want: autonomyNone, local: true},
			{at: 50 * time.Second, do: "answer"},
			{at: 51 * time.Second, do: "step", want: autonomyNone, local: true}, // handover counts from 50 s
			{at: 51 * time.Second, do: "receive"},
			{at: 52 * time.Second, do: "answer"},
			{at: 52 * time.Second, do: "step", fresh: true, peersOK: true, want: autonomyBack},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := autonomy{cutAfter: 5 * time.Second, handover: 10 * time.Second}
			cur := table(3)
			for i, st := range c.steps {
				now := lt0.Add(st.at)
				switch st.do {
				case "answer":
					s.answered(now)
				case "receive":
					s.received(now)
				case "step":
					if got := s.step(now, cur, st.fresh, st.peersOK); got != st.want {
						t.Fatalf("step %d at %s: event %d, want %d", i, st.at, got, st.want)
					}
					if s.local() != st.local {
						t.Fatalf("step %d at %s: local %v, want %v", i, st.at, s.local(), st.local)
					}
					if s.local() && s.atCut != cur {
						t.Fatalf("step %d: the assignments at the cut were not kept", i)
					}
				}
			}
		})
	}
}

func TestAnsweredReportsTheFirstAnswerAfterACut(t *testing.T) {
	s := autonomy{cutAfter: 5 * time.Second, handover: 10 * time.Second}
	if s.answered(lt0) {
		t.Error("an answer while connected asked for a fetch")
	}
	s.step(lt0.Add(6*time.Second), nil, false, false)
	if !s.answered(lt0.Add(20 * time.Second)) {
		t.Error("the first answer after the cut did not ask for a fetch")
	}
	if s.answered(lt0.Add(21 * time.Second)) {
		t.Error("a second answer asked again")
	}
}
