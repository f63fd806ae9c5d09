package planner

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/endpoints"
	"github.com/warrenhq/warren/controlplane/store"
)

// t0 is when the fixtures were written; every case plans at now, when a
// node last heard of at t0 is past the one-minute grace.
var (
	t0  = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	now = t0.Add(4 * time.Minute)
)

func cluster() *api.Cluster {
	return &api.Cluster{ID: "c", Network: api.ClusterNetworkSpec{PodCIDR: "10.42.0.0/16", ServiceCIDR: "10.43.0.0/16"}, NodeDownGrace: api.Duration(time.Minute)}
}

func worker(id string, heartbeat time.Time) api.Node {
	return api.Node{ID: id, Spec: api.NodeSpec{Role: api.RoleWorker, Availability: api.AvailabilityActive},
		Status: api.NodeStatus{State: api.NodeReady, Heartbeat: heartbeat, Capacity: api.Resources{NanoCPUs: 2e9, MemoryBytes: 1 << 30}}}
}

func manager(id string, leader, voter bool) api.Node {
	n := worker(id, t0)
	n.Spec.Role = api.RoleManager // heartbeats come from the fixture's hbs
	n.Status.Manager = &api.ManagerStatus{Leader: leader, Voter: voter}
	return n
}

func service(id string, replicas uint64, update api.UpdateConfig) api.Service {
	return api.Service{ID: id, SpecVersion: 1, Spec: api.ServiceSpec{Name: id, Mode: api.ModeReplicated, Replicas: replicas,
		Task:   api.TaskSpec{Container: api.ContainerSpec{Image: "demo:1"}, Restart: api.RestartPolicy{Condition: api.RestartAny}},
		Update: update}}
}

// bumped is svc with a new task template, as `service update --image` leaves it.
func bumped(svc api.Service, strategy api.UpdateStrategy) api.Service {
	prev := svc.Spec
	svc.PreviousSpec = &prev
	svc.Spec.Task.Container.Image = "demo:2"
	svc.Spec.Update.Strategy = strategy
	svc.SpecVersion++
	return svc
}

// runningTask is a task of svc's current template running on node.
func runningTask(id string, svc api.Service, slot uint64, node string) api.Task {
	return api.Task{ID: id, ServiceID: svc.ID, ServiceName: svc.Spec.Name, Slot: slot, NodeID: node,
		Spec: svc.Spec.Task, SpecVersion: svc.SpecVersion, Version: fmt.Sprintf("v%d", svc.SpecVersion), DesiredState: api.TaskRunning,
		Status: api.TaskStatus{State: api.TaskRunning, Timestamp: t0, Addr: fmt.Sprintf("10.42.0.%d", slot+10)}}
}

// fixture is a store without raft: batches are applied as the FSM would,
// so a plan whose expectations do not hold fails the test.
type fixture struct {
	t    *testing.T
	st   *store.Store
	hbs  map[string]time.Time
	raft *Raft
	rnd  *rand.Rand
	ids  func() string
}

func newFixture(t *testing.T, seed *store.Batch) *fixture {
	t.Helper()
	n := 0
	f := &fixture{t: t, st: store.New(), rnd: rand.New(rand.NewPCG(1, 2)), ids: func() string { n++; return fmt.Sprintf("new%02d", n) }}
	seed.Now = t0
	f.apply(seed)
	return f
}

func (f *fixture) apply(b *store.Batch) {
	f.t.Helper()
	data, err := store.Encode(b)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.st.Apply(f.st.Index()+1, data); err != nil {
		f.t.Fatalf("the FSM refused the plan: %v", err)
	}
}

func (f *fixture) snapshot() Snapshot {
	v := f.st.View()
	return Snapshot{Cluster: v.Cluster(), Nodes: v.Nodes(), Services: v.Services(), Tasks: v.Tasks(), Heartbeats: f.hbs, Raft: f.raft}
}

// plan runs Plan on the current state, checks it left the snapshot alone,
// and applies the batch.
func (f *fixture) plan(now time.Time) Result {
	f.t.Helper()
	s := f.snapshot()
	before := encode(f.t, s)
	res := Plan(s, now, f.rnd, f.ids)
	if after := encode(f.t, s); after != before {
		f.t.Fatalf("Plan modified its snapshot:\nbefore %s\nafter  %s", before, after)
	}
	if res.Batch != nil {
		f.apply(res.Batch)
	}
	return res
}

func encode(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func tasksOf(b *store.Batch, svc string) []api.Task {
	var out []api.Task
	for _, t := range b.PutTasks {
		if t.ServiceID == svc {
			out = append(out, t)
		}
	}
	return out
}

func TestPlan(t *testing.T) {
	rolling := api.UpdateConfig{Strategy: api.StrategyRolling, Parallelism: 1}
	web := service("web", 2, rolling)
	cases := []struct {
		name  string
		seed  *store.Batch
		hbs   map[string]time.Time
		raft  *Raft
		check func(t *testing.T, f *fixture, res Result)
	}{
		{
			name: "new service is placed in the batch that creates it, spread over the nodes",
			seed: &store.Batch{Cluster: cluster(), PutNodes: []api.Node{worker("n1", now), worker("n2", now)}, PutServices: []api.Service{web}},
			check: func(t *testing.T, f *fixture, res Result) {
				mustBatch(t, res)
				ts := tasksOf(res.Batch, "web")
				if len(ts) != 2 {
					t.Fatalf("put %d tasks, want 2: %+v", len(ts), ts)
				}
				nodes := map[string]bool{}
				for _, tk := range ts {
					if tk.Status.State != api.TaskAssigned || tk.DesiredState != api.TaskRunning || tk.SpecVersion != 1 {
						t.Errorf("task %s: %s/%s spec %d, want assigned/running spec 1", tk.ID, tk.Status.State, tk.DesiredState, tk.SpecVersion)
					}
					nodes[tk.NodeID] = true
				}
				if !nodes["n1"] || !nodes["n2"] {
					t.Errorf("placed on %v, want one replica on each of n1 and n2", nodes)
				}
				for _, e := range res.Batch.Expect {
					if e.Kind == store.KindTask && e.Version != 0 {
						t.Errorf("new task %s expected at version %d, want 0 (must not exist yet)", e.ID, e.Version)
					}
				}
				if res.Batch.Cluster == nil || res.Batch.Cluster.VIPs["web"] == "" || res.Batch.Cluster.Subnets["n1"] == "" {
					t.Errorf("the same batch should allocate the VIP and node subnets: %+v", res.Batch.Cluster)
				}
			},
		},
		{
			name: "scale down removes the highest slots and creates nothing",
			seed: &store.Batch{Cluster: cluster(), PutNodes: []api.Node{worker("n1", now), worker("n2", now)},
				PutServices: []api.Service{service("web", 1, rolling)},
				PutTasks:    []api.Task{runningTask("a", web, 1, "n1"), runningTask("b", web, 2, "n2"), runningTask("c", web, 3, "n1")}},
			check: func(t *testing.T, f *fixture, res Result) {
				mustBatch(t, res)
				got := map[string]api.TaskState{}
				for _, tk := range tasksOf(res.Batch, "web") {
					got[tk.ID] = tk.DesiredState
				}
				if want := map[string]api.TaskState{"b": api.TaskRemove, "c": api.TaskRemove}; !reflect.DeepEqual(got, want) {
					t.Errorf("tasks written %v, want %v", got, want)
				}
			},
		},
		{
			name: "node down: marked down, its task unknown but desired running, the slot replaced on a live node, no other node's table lists it",
			seed: &store.Batch{Cluster: cluster(), PutNodes: []api.Node{worker("n1", now), worker("n2", t0)},
				PutServices: []api.Service{web},
				PutTasks:    []api.Task{runningTask("a", web, 1, "n1"), runningTask("b", web, 2, "n2")}},
			check: func(t *testing.T, f *fixture, res Result) {
				mustBatch(t, res)
				if len(res.Batch.PutNodes) != 1 || res.Batch.PutNodes[0].ID != "n2" || res.Batch.PutNodes[0].Status.State != api.NodeDown {
					t.Fatalf("nodes written %+v, want n2 down", res.Batch.PutNodes)
				}
				var written, replacement bool
				for _, tk := range tasksOf(res.Batch, "web") {
					switch {
					case tk.ID == "b":
						written = tk.Status.State != api.TaskUnknown || tk.DesiredState != api.TaskRunning
					case tk.Slot == 2:
						replacement = tk.NodeID == "n1" && tk.Status.State == api.TaskAssigned
					}
				}
				if written || !replacement {
					t.Errorf("task b written other than unknown/running %v, replacement on n1 %v: %+v", written, replacement, res.Batch.PutTasks)
				}
				v := f.st.View()
				a := endpoints.ForNode("n1", endpoints.ClusterView{Index: v.Index(), Cluster: *v.Cluster(), Nodes: v.Nodes(), Services: v.Services(), Tasks: v.Tasks()})
				for _, s := range a.Services {
					for _, g := range s.Groups {
						for _, be := range g.Backends {
							if be.TaskID == "b" {
								t.Errorf("n1's table still lists the task of the down node: %+v", g)
							}
						}
					}
				}
			},
		},
		{
			name: "the leader's in-memory heartbeat keeps a node up that the store thinks silent",
			seed: &store.Batch{Cluster: cluster(), PutNodes: []api.Node{worker("n1", t0), worker("n2", t0)},
				PutServices: []api.Service{web},
				PutTasks:    []api.Task{runningTask("a", web, 1, "n1"), runningTask("b", web, 2, "n2")}},
			hbs: map[string]time.Time{"n1": now, "n2": now},
			check: func(t *testing.T, f *fixture, res Result) {
				if res.Batch != nil && (len(res.Batch.PutNodes) > 0 || len(res.Batch.PutTasks) > 0) {
					t.Errorf("nodes %+v tasks %+v written, want none", res.Batch.PutNodes, res.Batch.PutTasks)
				}
				if want := t0.Add(5 * time.Minute); !res.NextEval.Equal(want) {
					t.Errorf("next eval %v, want %v (the heartbeats' deadline)", res.NextEval, want)
				}
			},
		},
		{
			name: "rolling update step: the rollout opens and stops one old task (parallelism 1)",
			seed: &store.Batch{Cluster: cluster(), PutNodes: []api.Node{worker("n1", now), worker("n2", now)},
				PutServices: []api.Service{bumped(web, api.StrategyRolling)},
				PutTasks:    []api.Task{runningTask("a", web, 1, "n1"), runningTask("b", web, 2, "n2")}},
			check: func(t *testing.T, f *fixture, res Result) {
				mustBatch(t, res)
				if len(res.Batch.PutServices) != 1 || res.Batch.PutServices[0].Update == nil || res.Batch.PutServices[0].Update.State != api.UpdateUpdating {
					t.Fatalf("services written %+v, want web updating", res.Batch.PutServices)
				}
				stopped := 0
				for _, tk := range tasksOf(res.Batch, "web") {
					if tk.SpecVersion == 1 && tk.DesiredState == api.TaskShutdown {
						stopped++
					} else {
						t.Errorf("unexpected write of task %s: spec %d desired %s", tk.ID, tk.SpecVersion, tk.DesiredState)
					}
				}
				if stopped != 1 {
					t.Errorf("stopped %d old tasks, want 1", stopped)
				}
			},
		},
		{
			name: "canary: the new version is placed and the endpoints carry the canary weight",
			seed: &store.Batch{Cluster: cluster(), PutNodes: []api.Node{worker("n1", now), worker("n2", now)},
				PutServices: []api.Service{func() api.Service { s := bumped(web, api.StrategyCanary); s.Spec.Update.CanaryWeight = 20; return s }()},
				PutTasks:    []api.Task{runningTask("a", web, 1, "n1"), runningTask("b", web, 2, "n2")}},
			check: func(t *testing.T, f *fixture, res Result) {
				mustBatch(t, res)
				if s := res.Batch.PutServices; len(s) != 1 || s[0].Update == nil || s[0].Update.State != api.UpdateAwaitingPromote {
					t.Fatalf("services written %+v, want web awaiting promotion", s)
				}
				canaries := 0
				for _, tk := range tasksOf(res.Batch, "web") {
					if tk.SpecVersion == 2 && tk.Status.State == api.TaskAssigned && tk.NodeID != "" {
						canaries++
					}
				}
				if canaries != 1 {
					t.Errorf("%d canaries placed, want 1 (20%% of 2 replicas, rounded up)", canaries)
				}
				v := f.st.View()
				svc, _ := v.Service("web")
				weights := map[string]uint32{}
				for _, g := range endpoints.Compute(svc, v.TasksByService("web")).Groups {
					weights[g.Version] = g.Weight
				}
				if want := map[string]uint32{"v1": 80, "v2": 20}; !reflect.DeepEqual(weights, want) {
					t.Errorf("endpoint weights %v, want %v", weights, want)
				}
			},
		},
		{
			name: "unplaceable task stays pending with the scheduler's reason, written once",
			seed: &store.Batch{Cluster: cluster(), PutNodes: []api.Node{worker("n1", now), worker("n2", now)},
				PutServices: []api.Service{func() api.Service {
					s := service("huge", 1, rolling)
					s.Spec.Task.Resources.Reservations.MemoryBytes = 8 << 30
					return s
				}()}},
			check: func(t *testing.T, f *fixture, res Result) {
				mustBatch(t, res)
				ts := tasksOf(res.Batch, "huge")
				if len(ts) != 1 || ts[0].Status.State != api.TaskPending || ts[0].NodeID != "" {
					t.Fatalf("tasks %+v, want one pending", ts)
				}
				if want := "0/2 nodes available: 2 insufficient memory"; ts[0].Status.Message != want {
					t.Errorf("reason %q, want %q", ts[0].Status.Message, want)
				}
				if again := f.plan(now.Add(time.Second)); again.Batch != nil {
					t.Errorf("an unchanged reason was written again: %+v", again.Batch)
				}
			},
		},
		{
			name: "markLeader: the managers' leader and voter flags follow raft",
			seed: &store.Batch{Cluster: cluster(), PutNodes: []api.Node{manager("m1", false, false), manager("m2", true, true), manager("m3", false, true)}},
			hbs:  map[string]time.Time{"m1": now, "m2": now, "m3": now},
			raft: &Raft{Leader: "m1", Voters: map[string]bool{"m1": true, "m2": true}},
			check: func(t *testing.T, f *fixture, res Result) {
				mustBatch(t, res)
				got := map[string]api.ManagerStatus{}
				for _, n := range res.Batch.PutNodes {
					got[n.ID] = *n.Status.Manager
					if !n.Status.Heartbeat.Equal(t0) {
						t.Errorf("%s written with heartbeat %v: the leader's memory must not leak into the store", n.ID, n.Status.Heartbeat)
					}
				}
				// m3 is not in raft's membership: its voter flag is left alone.
				want := map[string]api.ManagerStatus{"m1": {Leader: true, Voter: true}, "m2": {Leader: false, Voter: true}}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("managers written %+v, want %+v", got, want)
				}
			},
		},
		{
			name: "markLeader amends a manager the same batch marks down instead of writing it twice",
			seed: &store.Batch{Cluster: cluster(), PutNodes: []api.Node{manager("m1", false, true), manager("m2", true, true)}},
			hbs:  map[string]time.Time{"m1": now},
			raft: &Raft{Leader: "m1", Voters: map[string]bool{"m1": true, "m2": true}},
			check: func(t *testing.T, f *fixture, res Result) {
				mustBatch(t, res)
				if len(res.Batch.PutNodes) != 2 {
					t.Fatalf("wrote %d nodes, want m1 and m2 once each: %+v", len(res.Batch.PutNodes), res.Batch.PutNodes)
				}
				m2, _ := f.st.View().Node("m2")
				if m2.Status.State != api.NodeDown || m2.Status.Manager.Leader {
					t.Errorf("m2: state %s leader %v, want down and not leader", m2.Status.State, m2.Status.Manager.Leader)
				}
			},
		},
		{
			name: "without raft's membership the managers' flags are left alone",
			seed: &store.Batch{Cluster: cluster(), PutNodes: []api.Node{manager("m1", false, false)}},
			hbs:  map[string]time.Time{"m1": now},
			check: func(t *testing.T, f *fixture, res Result) {
				if res.Batch != nil && len(res.Batch.PutNodes) > 0 {
					t.Errorf("nodes written %+v, want none", res.Batch.PutNodes)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.seed)
			f.hbs, f.raft = tc.hbs, tc.raft
			tc.check(t, f, f.plan(now))
		})
	}
}

func TestPlanWithoutClusterWritesNothing(t *testing.T) {
	res := Plan(Snapshot{Nodes: []api.Node{worker("n1", t0)}, Services: []api.Service{service("web", 1, api.UpdateConfig{})}}, t0, rand.New(rand.NewPCG(1, 2)), func() string { return "x" })
	if res.Batch != nil || !res.NextEval.IsZero() {
		t.Fatalf("plan before init: %+v", res)
	}
}

// TestPlanIsDeterministic: two leaders computing from the same snapshot with
// the same randomness and IDs propose the same batch.
func TestPlanIsDeterministic(t *testing.T) {
	seed := func() *fixture {
		nodes := []api.Node{worker("n1", t0), worker("n2", t0), worker("n3", t0)}
		return newFixture(t, &store.Batch{Cluster: cluster(), PutNodes: nodes, PutServices: []api.Service{service("web", 5, api.UpdateConfig{}), service("api", 4, api.UpdateConfig{})}})
	}
	a, b := seed(), seed()
	ra, rb := Plan(a.snapshot(), t0, a.rnd, a.ids), Plan(b.snapshot(), t0, b.rnd, b.ids)
	if ea, eb := encode(t, ra.Batch), encode(t, rb.Batch); ea != eb {
		t.Fatalf("same inputs, different batches:\n%s\n%s", ea, eb)
	}
}

func mustBatch(t *testing.T, res Result) {
	t.Helper()
	if res.Batch == nil {
		t.Fatal("the plan wrote nothing")
	}
}

// TestRestartedLeaderReplacesNothing is the one-node cluster whose daemon came
// back after 12 s: the store holds the node's heartbeat from t0 (the last
// one that changed something), the leader's memory of heartbeats is empty,
// and its agent has not registered yet. The plan must leave the node and its
// tasks alone until a whole grace has passed since the leader started
// (LeaderSince), and must say when to look again.
func TestRestartedLeaderReplacesNothing(t *testing.T) {
	web := service("web", 2, api.UpdateConfig{Strategy: api.StrategyRolling, Parallelism: 1})
	seed := func() *fixture {
		return newFixture(t, &store.Batch{Cluster: cluster(), PutNodes: []api.Node{worker("n1", t0)}, PutServices: []api.Service{web},
			PutTasks: []api.Task{runningTask("a", web, 1, "n1"), runningTask("b", web, 2, "n1")}})
	}
	since := now // t0 + 4 min: the stored heartbeat is long past the one-minute grace
	for _, at := range []time.Duration{0, 12 * time.Second, 59 * time.Second} {
		f := seed()
		s := f.snapshot()
		s.LeaderSince = since
		res := Plan(s, since.Add(at), f.rnd, f.ids)
		if res.Batch != nil && (len(res.Batch.PutNodes) > 0 || len(res.Batch.PutTasks) > 0 || len(res.Batch.DeleteTasks) > 0) {
			t.Fatalf("%s after the leader started: the plan touched nodes or tasks: %s", at, encode(t, res.Batch))
		}
		if want := since.Add(time.Minute); !res.NextEval.Equal(want) {
			t.Errorf("%s after the leader started: next eval %v, want %v", at, res.NextEval, want)
		}
	}
	// A whole grace without a heartbeat: the node is down after all.
	f := seed()
	s := f.snapshot()
	s.LeaderSince = since
	res := Plan(s, since.Add(time.Minute+time.Second), f.rnd, f.ids)
	mustBatch(t, res)
	if len(res.Batch.PutNodes) != 1 || res.Batch.PutNodes[0].Status.State != api.NodeDown {
		t.Fatalf("after the grace: nodes %+v, want n1 down", res.Batch.PutNodes)
	}
}
