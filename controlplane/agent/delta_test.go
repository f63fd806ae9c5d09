package agent

import (
	"context"
	"encoding/json"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/tabledelta"
	"github.com/warrenhq/warren/controlplane/testutil"
)

// deltaManager answers like a manager that sends deltas: against any
// version it published when the agent names that version's digest.
type deltaManager struct {
	nopManager
	self string

	mu       sync.Mutex
	versions []*deltaVersion
	changed  chan struct{}
	asks     []string // the base of every query
	deltas   int
	// corrupt leaves the first upserted service out of the next delta, as a
	// manager bug would.
	corrupt bool
	// old answers as a manager of the version before deltas: no digest,
	// the base ignored.
	old bool
}

type deltaVersion struct {
	full api.Assignments
	enc  *tabledelta.Encoded
}

func (m *deltaManager) publish(t *testing.T, index uint64, services []api.ServiceEndpoints, peers []api.Peer) {
	t.Helper()
	enc, err := tabledelta.Encode(services, peers)
	if err != nil {
		t.Fatal(err)
	}
	var own []api.Peer
	for _, p := range peers {
		if p.NodeID != m.self {
			own = append(own, p)
		}
	}
	full := api.Assignments{Index: index, NodeID: m.self, Services: services, Peers: own, Table: enc.SumFor(m.self).String()}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.old {
		full.Table = ""
	}
	m.versions = append(m.versions, &deltaVersion{full: roundTripped(t, full), enc: enc})
	if m.changed != nil {
		close(m.changed)
	}
	m.changed = make(chan struct{})
}

func roundTripped(t *testing.T, a api.Assignments) api.Assignments {
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var out api.Assignments
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func (m *deltaManager) AssignmentsFrom(ctx context.Context, index uint64, base string, wait time.Duration) (*api.Assignments, error) {
	m.mu.Lock()
	m.asks = append(m.asks, base)
	cur, ch := m.versions[len(m.versions)-1], m.changed
	m.mu.Unlock()
	if cur.full.Index <= index {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
			return &api.Assignments{Index: index}, nil
		case <-ch:
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur = m.versions[len(m.versions)-1]
	for _, v := range m.versions {
		if base == "" || m.old || v.enc.SumFor(m.self).String() != base {
			continue
		}
		var d api.TableDelta
		if err := json.Unmarshal(tabledelta.WithBase(v.enc.SumFor(m.self), tabledelta.Diff(&v.enc.Shape, cur.enc)), &d); err != nil {
			return nil, err
		}
		if m.corrupt && len(d.Services) > 0 {
			m.corrupt = false
			d.Services = d.Services[1:]
		}
		m.deltas++
		out := cur.full
		out.Services, out.Peers, out.Delta = nil, nil, &d
		return &out, nil
	}
	out := cur.full
	return &out, nil
}

// appliedTables records every table the node applied.
type appliedTables struct {
	mu     sync.Mutex
	tables []api.Assignments
}

func (n *appliedTables) SetNetwork(_ context.Context, a *api.Assignments) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.tables = append(n.tables, *a)
	return nil
}

func (n *appliedTables) last() (api.Assignments, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.tables) == 0 {
		return api.Assignments{}, false
	}
	return n.tables[len(n.tables)-1], true
}

func startDelta(t *testing.T, m *deltaManager, net *appliedTables) {
	a, err := New(Config{
		NodeID: m.self, DataDir: t.TempDir(), Manager: m, Executor: &recorder{}, Network: net,
		Registration: func() api.NodeRegistration { return api.NodeRegistration{} },
		Heartbeat:    20 * time.Millisecond, Wait: 200 * time.Millisecond, RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; a.Close() })
}

func svcAt(id string, weight uint32, backends ...string) api.ServiceEndpoints {
	g := api.VersionGroup{Version: "v1", Weight: weight, Backends: []api.Backend{}}
	for _, b := range backends {
		g.Backends = append(g.Backends, api.Backend{TaskID: b, NodeID: "n2", Addr: "10.42.2.2:80", Health: api.BackendActive})
	}
	return api.ServiceEndpoints{ServiceID: id, Name: id, VIP: "10.43.0.9", Groups: []api.VersionGroup{g}}
}

// waitTable waits until the node applied want's index and checks it
// applied want's table.
func waitTable(t *testing.T, net *appliedTables, want api.Assignments) {
	t.Helper()
	testutil.Eventually(t, "the node applies the table of index "+want.Table, 10*time.Second, func() bool {
		got, ok := net.last()
		return ok && got.Index == want.Index
	})
	got, _ := net.last()
	if !reflect.DeepEqual(got.Services, want.Services) || !reflect.DeepEqual(got.Peers, want.Peers) || got.Table != want.Table {
		t.Fatalf("index %d applied\n%+v\n%+v\nwant\n%+v\n%+v", want.Index, got.Services, got.Peers, want.Services, want.Peers)
	}
}

func (m *deltaManager) version(i int) api.Assignments {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.versions[i].full
}

// The node asks with the digest of what it holds, applies the deltas it
// gets and ends every time with the managers' table.
func TestWatchAppliesDeltas(t *testing.T) {
	m := &deltaManager{self: "n1"}
	peers := []api.Peer{{NodeID: "n1", WGPublicKey: "k1"}, {NodeID: "n2", WGPublicKey: "k2"}}
	m.publish(t, 5, []api.ServiceEndpoints{svcAt("a", 100, "t1"), svcAt("b", 100, "t2")}, peers)
	net := &appliedTables{}
	startDelta(t, m, net)
	waitTable(t, net, m.version(0))

	m.publish(t, 7, []api.ServiceEndpoints{svcAt("a", 100, "t1"), svcAt("b", 50, "t2", "t3")}, peers)
	waitTable(t, net, m.version(1))
	m.publish(t, 9, []api.ServiceEndpoints{svcAt("b", 50, "t2", "t3"), svcAt("c", 100)},
		[]api.Peer{{NodeID: "n1", WGPublicKey: "k1b"}, {NodeID: "n3", WGPublicKey: "k3"}})
	waitTable(t, net, m.version(2))

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.deltas < 2 {
		t.Errorf("%d deltas answered, want one per change (asks: %v)", m.deltas, m.asks)
	}
}

// A delta that does not make the managers' table is never applied: the
// node asks again for the full table and applies that.
func TestWatchAsksForTheFullTableWhenADeltaDoesNotCheckOut(t *testing.T) {
	m := &deltaManager{self: "n1"}
	peers := []api.Peer{{NodeID: "n2", WGPublicKey: "k2"}}
	m.publish(t, 5, []api.ServiceEndpoints{svcAt("a", 100, "t1"), svcAt("b", 100, "t2")}, peers)
	net := &appliedTables{}
	startDelta(t, m, net)
	waitTable(t, net, m.version(0))

	m.mu.Lock()
	m.corrupt = true
	m.mu.Unlock()
	m.publish(t, 7, []api.ServiceEndpoints{svcAt("a", 10, "t1"), svcAt("b", 10, "t2")}, peers)
	waitTable(t, net, m.version(1))

	net.mu.Lock()
	for _, tb := range net.tables {
		if tb.Index == 7 && !reflect.DeepEqual(tb.Services, m.version(1).Services) {
			t.Errorf("a table that is not the managers' was applied: %+v", tb.Services)
		}
	}
	net.mu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	asked := false
	for i := 1; i < len(m.asks); i++ {
		if m.asks[i] == "" && m.asks[i-1] != "" {
			asked = true
		}
	}
	if !asked || m.corrupt {
		t.Errorf("the node did not ask for the full table after the bad delta (asks %v)", m.asks)
	}
}

// A manager of the version before deltas sends no digest: the node names
// no base and applies the full tables it gets, as before.
func TestWatchWithAnOlderManager(t *testing.T) {
	m := &deltaManager{self: "n1", old: true}
	m.publish(t, 5, []api.ServiceEndpoints{svcAt("a", 100, "t1")}, []api.Peer{{NodeID: "n2"}})
	net := &appliedTables{}
	startDelta(t, m, net)
	waitTable(t, net, m.version(0))
	m.publish(t, 7, []api.ServiceEndpoints{svcAt("a", 10, "t1")}, []api.Peer{{NodeID: "n2"}})
	waitTable(t, net, m.version(1))
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range m.asks {
		if b != "" {
			t.Fatalf("the node named a base %q to a manager that sent no digest", b)
		}
	}
}
