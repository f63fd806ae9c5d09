package agent

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/testutil"
)

func svcOf(id string, groups map[string][]string) api.ServiceEndpoints {
	s := api.ServiceEndpoints{ServiceID: id, Name: id}
	for _, v := range []string{"v1", "v2", "v3"} {
		if ts, ok := groups[v]; ok {
			g := api.VersionGroup{Version: v, Weight: 50}
			for _, t := range ts {
				g.Backends = append(g.Backends, api.Backend{TaskID: t})
			}
			s.Groups = append(s.Groups, g)
		}
	}
	return s
}

func bt(id string, conns, failures, resets uint64) api.BackendTraffic {
	return api.BackendTraffic{TaskID: id, Connections: conns, ConnectFailures: failures, Resets: resets}
}

func counts(bs ...api.BackendTraffic) map[string]api.BackendTraffic {
	m := map[string]api.BackendTraffic{}
	for _, b := range bs {
		m[b.TaskID] = b
	}
	return m
}

// TestWindowTraffic walks one node through a canary: one version reports
// nothing; the canary opens a window that hides the stable version's
// history; a canary task that joins later counts from zero; counters that
// started again are counted on, never subtracted; a new version set reopens
// the window; the end of the canary closes it.
func TestWindowTraffic(t *testing.T) {
	one := []api.ServiceEndpoints{svcOf("web", map[string][]string{"v1": {"a", "b"}})}
	canary := []api.ServiceEndpoints{svcOf("web", map[string][]string{"v1": {"a", "b"}, "v2": {"c"}})}
	canary2 := []api.ServiceEndpoints{svcOf("web", map[string][]string{"v1": {"a"}, "v2": {"c", "d"}})}
	other := []api.ServiceEndpoints{svcOf("web", map[string][]string{"v1": {"a"}, "v3": {"e"}})}
	blueGreen := []api.ServiceEndpoints{svcOf("web", map[string][]string{"v1": {"a"}, "v3": {"e"}})}
	blueGreen[0].Groups[1].Weight = 0
	steps := []struct {
		name     string
		services []api.ServiceEndpoints
		now      map[string]api.BackendTraffic
		want     []api.BackendTraffic
	}{
		{"one version: nothing to compare", one, counts(bt("a", 500, 0, 1), bt("b", 400, 0, 0)), nil},
		{"canary opens the window", canary, counts(bt("a", 510, 0, 1), bt("b", 410, 0, 0)), nil},
		{"counts since the window", canary, counts(bt("a", 560, 0, 1), bt("b", 450, 0, 0), bt("c", 11, 2, 3)),
			[]api.BackendTraffic{bt("a", 50, 0, 0), bt("b", 40, 0, 0), bt("c", 11, 2, 3)}},
		{"a canary task joining counts from zero", canary2, counts(bt("a", 600, 0, 1), bt("c", 30, 2, 5), bt("d", 7, 0, 1)),
			[]api.BackendTraffic{bt("a", 90, 0, 0), bt("c", 30, 2, 5), bt("d", 7, 0, 1)}},
		{"counters started again count on from their new values", canary2, counts(bt("a", 3, 0, 0), bt("c", 31, 2, 5), bt("d", 1, 0, 0)),
			[]api.BackendTraffic{bt("a", 93, 0, 0), bt("c", 31, 2, 5), bt("d", 8, 0, 1)}},
		{"and on", canary2, counts(bt("a", 13, 0, 0), bt("c", 35, 2, 6), bt("d", 1, 0, 0)),
			[]api.BackendTraffic{bt("a", 103, 0, 0), bt("c", 35, 2, 6), bt("d", 8, 0, 1)}},
		{"another version set reopens it", other, counts(bt("a", 20, 0, 0), bt("e", 2, 0, 0)), nil},
		{"a version without traffic is no split: closed", blueGreen, counts(bt("a", 25, 0, 0), bt("e", 2, 0, 0)), nil},
		{"back to one version", one, counts(bt("a", 30, 0, 0)), nil},
	}
	windows := map[string]*trafficWindow{}
	for _, st := range steps {
		got := windowTraffic(st.services, st.now, windows)
		if !reflect.DeepEqual(got, st.want) {
			t.Fatalf("%s: got %+v, want %+v", st.name, got, st.want)
		}
	}
	if len(windows) != 0 {
		t.Errorf("windows left open after the canary: %v", windows)
	}
}

// trafficNet is a Network whose dataplane counts: every read, each backend
// has had 10 more connections, one of them reset.
type trafficNet struct {
	recorder
	mu    sync.Mutex
	reads uint64
}

func (n *trafficNet) BackendTraffic() (map[string]api.BackendTraffic, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.reads++
	return counts(bt("a", 10*n.reads, 0, n.reads), bt("c", 10*n.reads, 0, n.reads)), nil
}

// TestHeartbeatCarriesTraffic: the heartbeat carries the window's counts of
// the backends of a service running two versions, from the dataplane of the
// Network.
func TestHeartbeatCarriesTraffic(t *testing.T) {
	as := assignments(4, nil)
	as.Services = []api.ServiceEndpoints{svcOf("web", map[string][]string{"v1": {"a"}, "v2": {"c"}})}
	f := newFakeManager(t, as)
	n := &trafficNet{}
	a, err := New(Config{
		NodeID: "n1", DataDir: t.TempDir(), Manager: newClient(t, f, f.addr()), Executor: &recorder{}, Network: n,
		Registration: func() api.NodeRegistration { return api.NodeRegistration{} },
		Heartbeat:    10 * time.Millisecond, Wait: 200 * time.Millisecond,
		RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; a.Close() }()
	testutil.Eventually(t, "a heartbeat carries both backends' counts", 15*time.Second, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, r := range f.register {
			if len(r.Traffic) == 2 && r.Traffic[0].TaskID == "a" && r.Traffic[1].TaskID == "c" &&
				r.Traffic[0].Connections == 10*r.Traffic[0].Resets && r.Traffic[0].Resets > 0 {
				return true
			}
		}
		return false
	})
}
