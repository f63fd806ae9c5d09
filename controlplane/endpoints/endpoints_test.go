package endpoints

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"pgregory.net/rapid"
)

func tk(id, version string, mut ...func(*api.Task)) api.Task {
	t := api.Task{ID: id, ServiceID: "web", NodeID: "n1", Version: version, DesiredState: api.TaskRunning,
		Status: api.TaskStatus{State: api.TaskRunning, Addr: "10.42.0." + id}}
	for _, m := range mut {
		m(&t)
	}
	return t
}

func TestComputeHealth(t *testing.T) {
	check := &api.HealthCheck{Kind: api.HealthTCP}
	cases := []struct {
		name string
		task api.Task
		want api.BackendHealth // "" = omitted
	}{
		{"running no check", tk("1", "v1"), api.BackendActive},
		{"running healthy", tk("1", "v1", func(t *api.Task) { t.Spec.Health = check; t.Status.Health = api.HealthHealthy }), api.BackendActive},
		{"running check not reported yet", tk("1", "v1", func(t *api.Task) { t.Spec.Health = check }), api.BackendUnhealthy},
		{"running starting", tk("1", "v1", func(t *api.Task) { t.Spec.Health = check; t.Status.Health = api.HealthStarting }), api.BackendUnhealthy},
		{"running unhealthy", tk("1", "v1", func(t *api.Task) { t.Spec.Health = check; t.Status.Health = api.HealthUnhealthy }), api.BackendUnhealthy},
		{"starting", tk("1", "v1", func(t *api.Task) { t.Status.State = api.TaskStarting }), api.BackendUnhealthy},
		{"desired shutdown", tk("1", "v1", func(t *api.Task) { t.DesiredState = api.TaskShutdown }), api.BackendTerminating},
		{"desired remove", tk("1", "v1", func(t *api.Task) { t.DesiredState = api.TaskRemove }), api.BackendTerminating},
		{"terminal", tk("1", "v1", func(t *api.Task) { t.Status.State = api.TaskFailed }), ""},
		{"no address", tk("1", "v1", func(t *api.Task) { t.Status.Addr = "" }), ""},
		{"other service", tk("1", "v1", func(t *api.Task) { t.ServiceID = "db" }), ""},
	}
	for _, tc := range cases {
		se := Compute(api.Service{ID: "web"}, []api.Task{tc.task})
		var got api.BackendHealth
		for _, g := range se.Groups {
			for _, b := range g.Backends {
				got = b.Health
			}
		}
		if got != tc.want {
			t.Errorf("%s: health %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestComputeWeights(t *testing.T) {
	unhealthy := func(t *api.Task) { t.Status.State = api.TaskStarting }
	cases := []struct {
		name    string
		weights map[string]uint32
		tasks   []api.Task
		want    map[string]uint32
	}{
		{"single version", nil, []api.Task{tk("1", "v1"), tk("2", "v1")}, map[string]uint32{"v1": 100}},
		{"single version nothing active", nil, []api.Task{tk("1", "v1", unhealthy)}, map[string]uint32{"v1": 100}},
		{"rolling update shares by active backends", nil,
			[]api.Task{tk("1", "v1"), tk("2", "v1"), tk("3", "v2"), tk("4", "v2", unhealthy)}, map[string]uint32{"v1": 67, "v2": 33}},
		{"three way sums to 100", nil, []api.Task{tk("1", "a"), tk("2", "b"), tk("3", "c")}, map[string]uint32{"a": 34, "b": 33, "c": 33}},
		{"canary weights", map[string]uint32{"v1": 90, "v2": 10},
			[]api.Task{tk("1", "v1"), tk("2", "v1"), tk("3", "v2")}, map[string]uint32{"v1": 90, "v2": 10}},
		{"blue-green before promote keeps empty green group", map[string]uint32{"blue": 100, "green": 0},
			[]api.Task{tk("1", "blue")}, map[string]uint32{"blue": 100, "green": 0}},
		{"version missing from weights gets nothing", map[string]uint32{"v2": 100},
			[]api.Task{tk("1", "v1"), tk("2", "v2")}, map[string]uint32{"v1": 0, "v2": 100}},
	}
	for _, tc := range cases {
		svc := api.Service{ID: "web"}
		if tc.weights != nil {
			svc.Update = &api.UpdateStatus{State: "awaiting-promote", Weights: tc.weights}
		}
		se := Compute(svc, tc.tasks)
		got := map[string]uint32{}
		for _, g := range se.Groups {
			got[g.Version] = g.Weight
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: weights %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestComputeRapidWeightsSumTo100(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 20).Draw(t, "tasks")
		var tasks []api.Task
		active := false
		for i := 0; i < n; i++ {
			x := tk(fmt.Sprint(i), rapid.SampledFrom([]string{"v1", "v2", "v3"}).Draw(t, "v"))
			if rapid.Bool().Draw(t, "starting") {
				x.Status.State = api.TaskStarting
			} else {
				active = true
			}
			tasks = append(tasks, x)
		}
		se := Compute(api.Service{ID: "web"}, tasks)
		var sum uint32
		backends := 0
		for _, g := range se.Groups {
			sum += g.Weight
			backends += len(g.Backends)
			if len(g.Backends) > 0 && g.Weight > 0 {
				hasActive := false
				for _, b := range g.Backends {
					hasActive = hasActive || b.Health == api.BackendActive
				}
				if !hasActive && len(se.Groups) > 1 {
					t.Fatalf("group %s has weight %d but no active backend", g.Version, g.Weight)
				}
			}
		}
		if backends != n {
			t.Fatalf("%d backends for %d tasks", backends, n)
		}
		if active && sum != 100 {
			t.Fatalf("weights sum to %d: %+v", sum, se.Groups)
		}
	})
}

func view() ClusterView {
	node := func(id string, state api.NodeState, key string) api.Node {
		return api.Node{ID: id, Status: api.NodeStatus{State: state, Addr: "192.0.2." + id[1:],
			Network: api.NodeNetwork{WGPublicKey: key}}}
	}
	n3 := node("n3", api.NodeReady, "k3")
	n3.Status.Manager = &api.ManagerStatus{APIAddr: "192.0.2.3:2377"}
	n1 := node("n1", api.NodeReady, "k1")
	n1.Status.Manager = &api.ManagerStatus{APIAddr: "192.0.2.1:2377"}
	return ClusterView{
		Index: 42,
		Cluster: api.Cluster{
			Network: api.ClusterNetworkSpec{PodCIDR: "10.42.0.0/16", ServiceCIDR: "10.43.0.0/16", Domain: "warren.local", WGPort: 51820},
			Subnets: map[string]string{"n1": "10.42.0.0/24", "n2": "10.42.1.0/24", "n3": "10.42.2.0/24", "n4": "10.42.3.0/24", "n5": "10.42.4.0/24"},
			VIPs:    map[string]string{"web": "10.43.0.2"},
		},
		Nodes: []api.Node{
			n1, node("n2", api.NodeReady, "k2"), n3,
			node("n4", api.NodeDown, "k4"), // down: not a peer
			node("n5", api.NodeReady, ""),  // no key yet: not a peer
		},
		Services: []api.Service{{ID: "web", Spec: api.ServiceSpec{Name: "web"}, Endpoint: api.Endpoint{VIP: "10.43.0.2"}}, {ID: "db"}},
		Tasks: []api.Task{
			{ID: "t1", ServiceID: "web", NodeID: "n1", Version: "v1", DesiredState: api.TaskRunning, Status: api.TaskStatus{State: api.TaskRunning, Addr: "10.42.0.5"}},
			{ID: "t2", ServiceID: "web", NodeID: "n2", Version: "v1", DesiredState: api.TaskRunning, Status: api.TaskStatus{State: api.TaskRunning, Addr: "10.42.1.5"}},
			{ID: "t3", ServiceID: "db", NodeID: "n2", DesiredState: api.TaskRunning},
			{ID: "t4", ServiceID: "web", NodeID: "n1", DesiredState: api.TaskRemove},
			{ID: "t5", ServiceID: "web", NodeID: "n1", DesiredState: api.TaskShutdown},
			{ID: "t6", ServiceID: "web", DesiredState: api.TaskRunning, Status: api.TaskStatus{State: api.TaskPending}},
		},
	}
}

func TestForNode(t *testing.T) {
	a := ForNode("n2", view())
	var ids []string
	for _, x := range a.Tasks {
		ids = append(ids, x.ID)
	}
	if !reflect.DeepEqual(ids, []string{"t2", "t3"}) {
		t.Errorf("tasks %v", ids)
	}
	var peers []string
	for _, p := range a.Peers {
		peers = append(peers, p.NodeID+"@"+p.WGEndpoint+"/"+p.Subnet)
	}
	if want := []string{"n1@192.0.2.1:51820/10.42.0.0/24", "n3@192.0.2.3:51820/10.42.2.0/24"}; !reflect.DeepEqual(peers, want) {
		t.Errorf("peers %v, want %v", peers, want)
	}
	wantNet := api.ClusterNetwork{PodCIDR: "10.42.0.0/16", ServiceCIDR: "10.43.0.0/16", Domain: "warren.local", Subnet: "10.42.1.0/24"}
	if a.Network != wantNet || a.Index != 42 || a.NodeID != "n2" {
		t.Errorf("network %+v index %d node %s", a.Network, a.Index, a.NodeID)
	}
	if !reflect.DeepEqual(a.Managers, []string{"192.0.2.1:2377", "192.0.2.3:2377"}) {
		t.Errorf("managers %v", a.Managers)
	}
	if want := []string{"n1", "n3"}; !reflect.DeepEqual(a.ManagerIDs, want) {
		t.Errorf("manager IDs %v, want %v (the nodes with a manager status, sorted)", a.ManagerIDs, want)
	}
	if len(a.Services) != 2 || a.Services[1].ServiceID != "web" || a.Services[1].VIP != "10.43.0.2" {
		t.Fatalf("services %+v", a.Services)
	}
	// The service table is global: the node sees web's backend on n1 too.
	if g := a.Services[1].Groups; len(g) != 1 || len(g[0].Backends) != 2 {
		t.Errorf("web groups %+v", g)
	}
}

// Property: whatever the snapshot, a node only ever receives its own tasks
// and never itself as a peer.
func TestForNodeRapidOnlyOwnTasks(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := view()
		nt := rapid.IntRange(0, 30).Draw(t, "tasks")
		v.Tasks = nil
		for i := 0; i < nt; i++ {
			v.Tasks = append(v.Tasks, api.Task{
				ID:           fmt.Sprint("t", i),
				ServiceID:    rapid.SampledFrom([]string{"web", "db"}).Draw(t, "svc"),
				NodeID:       rapid.SampledFrom([]string{"", "n1", "n2", "n3", "n4", "n5"}).Draw(t, "node"),
				DesiredState: rapid.SampledFrom([]api.TaskState{api.TaskRunning, api.TaskShutdown, api.TaskRemove}).Draw(t, "desired"),
			})
		}
		me := rapid.SampledFrom([]string{"n1", "n2", "n3", "n4", "n5"}).Draw(t, "me")
		a := ForNode(me, v)
		want := 0
		for _, x := range v.Tasks {
			if x.NodeID == me && x.DesiredState != api.TaskRemove {
				want++
			}
		}
		if len(a.Tasks) != want {
			t.Fatalf("got %d tasks, want %d", len(a.Tasks), want)
		}
		for _, x := range a.Tasks {
			if x.NodeID != me {
				t.Fatalf("node %s received task %s of node %s", me, x.ID, x.NodeID)
			}
		}
		for _, p := range a.Peers {
			if p.NodeID == me {
				t.Fatalf("node %s is its own peer", me)
			}
		}
	})
}

func TestComputeStackAliases(t *testing.T) {
	svc := api.Service{ID: "web", Spec: api.ServiceSpec{Name: "shop_web", Labels: map[string]string{api.LabelStack: "shop", api.LabelStackService: "web"}}}
	se := Compute(svc, nil)
	if se.Scope != "shop" || !reflect.DeepEqual(se.Aliases, []string{"web"}) {
		t.Errorf("stack service: scope %q aliases %v", se.Scope, se.Aliases)
	}
	se = Compute(api.Service{ID: "web", Spec: api.ServiceSpec{Name: "web", Labels: map[string]string{api.LabelStack: "shop"}}}, nil)
	if se.Scope != "" || se.Aliases != nil {
		t.Errorf("half-labelled service got scope %q aliases %v", se.Scope, se.Aliases)
	}
}

// A draining task stays with its node as running while every service table
// already lists it as terminating; once released the node sees the stop.
func TestForNodeHoldsDrainingTask(t *testing.T) {
	for _, desired := range []api.TaskState{api.TaskShutdown, api.TaskRemove} {
		t.Run(string(desired), func(t *testing.T) {
			v := view()
			v.Tasks[1].DesiredState = desired
			v.Tasks[1].Drain = &api.Drain{Since: time.Unix(100, 0), Index: 40}
			a := ForNode("n2", v)
			if len(a.Tasks) != 2 || a.Tasks[0].ID != "t2" || a.Tasks[0].DesiredState != api.TaskRunning {
				t.Fatalf("node tasks while draining: %+v", a.Tasks)
			}
			var h api.BackendHealth
			for _, b := range a.Services[1].Groups[0].Backends {
				if b.TaskID == "t2" {
					h = b.Health
				}
			}
			if h != api.BackendTerminating {
				t.Fatalf("draining backend is %q in the table, want terminating", h)
			}
			if other := ForNode("n1", v); len(other.Services[1].Groups[0].Backends) != 2 {
				t.Fatalf("the other node's table lost the draining backend (its open connections): %+v", other.Services[1])
			}

			v.Tasks[1].Drain.Done = time.Unix(101, 0)
			a = ForNode("n2", v)
			for _, x := range a.Tasks {
				if x.ID == "t2" && x.DesiredState != desired {
					t.Fatalf("released task handed as %s, want %s", x.DesiredState, desired)
				}
				if x.ID == "t2" && desired == api.TaskRemove {
					t.Fatal("released removed task still handed to its node")
				}
			}

			// A draining task that exited on its own is not held (its
			// restart policy must not bring it back).
			v.Tasks[1].Drain.Done = time.Time{}
			v.Tasks[1].Status.State = api.TaskFailed
			for _, x := range ForNode("n2", v).Tasks {
				if x.ID == "t2" && x.DesiredState == api.TaskRunning {
					t.Fatal("a crashed draining task was handed as running")
				}
			}
		})
	}
}
