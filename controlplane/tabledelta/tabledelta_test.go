package tabledelta

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"pgregory.net/rapid"

	"github.com/warrenhq/warren/controlplane/api"
)

func svc(id string, weight uint32, backends ...string) api.ServiceEndpoints {
	s := api.ServiceEndpoints{ServiceID: id, Name: "svc-" + id, VIP: "10.43.0.1",
		Ports: []api.PortConfig{{Protocol: "tcp", TargetPort: 80}}}
	g := api.VersionGroup{Version: "v1", Weight: weight, Backends: []api.Backend{}}
	for _, b := range backends {
		g.Backends = append(g.Backends, api.Backend{TaskID: b, NodeID: "n1", Addr: "10.42.1.2:80", Health: api.BackendActive})
	}
	s.Groups = []api.VersionGroup{g}
	return s
}

func peer(id, key string) api.Peer {
	return api.Peer{NodeID: id, Addr: "192.0.2.1", Subnet: "10.42.1.0/24", WGPublicKey: key}
}

// without is peers as node sees them.
func without(peers []api.Peer, node string) []api.Peer {
	out := []api.Peer{}
	for _, p := range peers {
		if p.NodeID != node {
			out = append(out, p)
		}
	}
	return out
}

// tb is what testing.TB and rapid.T have in common.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// roundTrip is v as a node decodes it from the wire.
func roundTrip[T any](t tb, v any) T {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return out
}

// step diffs old → new for node self as the managers do, sends the delta
// over JSON, and applies it as the node does. It fails unless the node
// ends with the managers' table, byte for byte, and its digest.
func step(t tb, self string, oldS []api.ServiceEndpoints, oldP []api.Peer, newS []api.ServiceEndpoints, newP []api.Peer) (api.TableDelta, *Held) {
	t.Helper()
	base, err := Encode(oldS, oldP)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := Encode(newS, newP)
	if err != nil {
		t.Fatal(err)
	}
	held, err := Hold(roundTrip[[]api.ServiceEndpoints](t, oldS), roundTrip[[]api.Peer](t, without(oldP, self)))
	if err != nil {
		t.Fatal(err)
	}
	if held.Sum() != base.SumFor(self) {
		t.Fatalf("the node sums its table to %s, the managers to %s", held.Sum(), base.SumFor(self))
	}
	wire := WithBase(base.SumFor(self), Diff(&base.Shape, cur))
	var d api.TableDelta
	if err := json.Unmarshal(wire, &d); err != nil {
		t.Fatalf("delta does not decode: %v\n%s", err, wire)
	}
	got, err := held.Apply(d, self)
	if err != nil {
		t.Fatal(err)
	}
	gs, _ := json.Marshal(got.Services)
	gp, _ := json.Marshal(got.Peers)
	if ws := cur.Services(); !bytes.Equal(gs, ws) {
		t.Fatalf("services after the delta\n%s\nwant\n%s", gs, ws)
	}
	if wp := cur.PeersFor(self); !bytes.Equal(gp, wp) {
		t.Fatalf("peers after the delta\n%s\nwant\n%s", gp, wp)
	}
	if got.Sum() != cur.SumFor(self) {
		t.Fatalf("sum after the delta %s, the managers' %s", got.Sum(), cur.SumFor(self))
	}
	return d, got
}

func TestDiffApply(t *testing.T) {
	base := []api.ServiceEndpoints{svc("a", 100, "t1", "t2"), svc("b", 100, "t3"), svc("c", 100)}
	peers := []api.Peer{peer("n1", "k1"), peer("n2", "k2"), peer("n3", "k3")}
	for _, tc := range []struct {
		name     string
		self     string
		services []api.ServiceEndpoints
		peers    []api.Peer
		want     api.TableDelta // without Base
	}{
		{name: "nothing changed", self: "n1", services: base, peers: peers},
		{name: "a weight", self: "n1", services: []api.ServiceEndpoints{base[0], svc("b", 50, "t3"), base[2]}, peers: peers,
			want: api.TableDelta{Services: []api.ServiceEndpoints{svc("b", 50, "t3")}}},
		{name: "a backend added", self: "n1", services: []api.ServiceEndpoints{svc("a", 100, "t1", "t2", "t9"), base[1], base[2]}, peers: peers,
			want: api.TableDelta{Services: []api.ServiceEndpoints{svc("a", 100, "t1", "t2", "t9")}}},
		{name: "a service added in the middle, one removed", self: "n1",
			services: []api.ServiceEndpoints{base[0], svc("ab", 100, "t5"), base[2]}, peers: peers,
			want: api.TableDelta{Services: []api.ServiceEndpoints{svc("ab", 100, "t5")}, RemovedServices: []string{"b"}}},
		{name: "every service removed", self: "n1", services: []api.ServiceEndpoints{}, peers: peers,
			want: api.TableDelta{RemovedServices: []string{"a", "b", "c"}}},
		{name: "a peer's key changed, one joined, one left", self: "n1", services: base,
			peers: []api.Peer{peer("n0", "k0"), peer("n1", "k1"), peer("n2", "k2b")},
			want:  api.TableDelta{Peers: []api.Peer{peer("n0", "k0"), peer("n2", "k2b")}, RemovedPeers: []string{"n3"}}},
		// The delta is the same for every node: n2 gets its own new
		// entry and keeps it out of its peers.
		{name: "the node's own entry changed", self: "n2", services: base,
			peers: []api.Peer{peer("n1", "k1"), peer("n2", "k2b"), peer("n3", "k3")},
			want:  api.TableDelta{Peers: []api.Peer{peer("n2", "k2b")}}},
		{name: "the node itself left the mesh", self: "n3", services: base, peers: peers[:2],
			want: api.TableDelta{RemovedPeers: []string{"n3"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := step(t, tc.self, base, peers, tc.services, tc.peers)
			d.Base = ""
			if want := roundTrip[api.TableDelta](t, tc.want); !reflect.DeepEqual(d, want) {
				t.Errorf("delta %+v, want %+v", d, want)
			}
		})
	}
}

// The spliced encodings are what encoding the table whole gave before
// deltas: an agent that asks for no delta gets the same bytes as ever.
func TestEncodedIsTheTableEncoded(t *testing.T) {
	s := []api.ServiceEndpoints{svc("a", 100, "t1"), svc("b", 0)}
	p := []api.Peer{peer("n1", "k1"), peer("n2", "k<&>")}
	e, err := Encode(s, p)
	if err != nil {
		t.Fatal(err)
	}
	ws, _ := json.Marshal(s)
	wp, _ := json.Marshal(p[1:])
	if !bytes.Equal(e.Services(), ws) || !bytes.Equal(e.PeersFor("n1"), wp) {
		t.Errorf("spliced\n%s\n%s\nwant\n%s\n%s", e.Services(), e.PeersFor("n1"), ws, wp)
	}
	empty, _ := Encode(nil, nil)
	if string(empty.Services()) != "[]" || string(empty.PeersFor("n1")) != "[]" {
		t.Errorf("empty table encodes as %s %s", empty.Services(), empty.PeersFor("n1"))
	}
}

func TestApplyRefusesAnotherBase(t *testing.T) {
	h, err := Hold([]api.ServiceEndpoints{svc("a", 100)}, []api.Peer{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Apply(api.TableDelta{Base: (h.Sum() + 1).String()}, "n1"); err == nil {
		t.Error("a delta against another table was applied")
	}
}

// A delta that does not make the managers' table of the node's copy — a
// change the managers left out, or an entry the node decodes into less
// than was sent (a field its version does not know) — ends with a sum
// that is not the managers': the agent asks for the full table instead of
// keeping a wrong one.
func TestDivergenceIsDetected(t *testing.T) {
	old := []api.ServiceEndpoints{svc("a", 100, "t1"), svc("b", 100)}
	base, _ := Encode(old, nil)
	held, _ := Hold(old, []api.Peer{})
	cur, _ := Encode([]api.ServiceEndpoints{svc("a", 50, "t1"), svc("b", 50)}, nil)
	b50, _ := json.Marshal(svc("b", 50))
	future := append(b50[:len(b50)-1:len(b50)-1], `,"future":1}`...)
	for _, tc := range []struct {
		name, delta string
		want        Sum
	}{
		{"a change left out", `{"base":"` + base.SumFor("n1").String() + `","services":[` + string(b50) + `]}`, cur.SumFor("n1")},
		{"a field the node drops", `{"base":"` + base.SumFor("n1").String() + `","services":[` + string(future) + `]}`,
			base.SumFor("n1") - Sum(hash(kindService, mustJSON(t, old[1]))) + Sum(hash(kindService, future))},
	} {
		var d api.TableDelta
		if err := json.Unmarshal([]byte(tc.delta), &d); err != nil {
			t.Fatal(err)
		}
		got, err := held.Apply(d, "n1")
		if err != nil {
			t.Fatal(err)
		}
		if got.Sum() == tc.want {
			t.Errorf("%s: the node's copy sums to the managers' table", tc.name)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseSum(t *testing.T) {
	s := Sum(0x0123456789abcdef)
	if got, err := ParseSum(s.String()); err != nil || got != s {
		t.Errorf("ParseSum(%q) = %v, %v", s.String(), got, err)
	}
	for _, bad := range []string{"", "12", "0123456789abcdeg", "0123456789abcdef0"} {
		if _, err := ParseSum(bad); err == nil {
			t.Errorf("ParseSum(%q) accepted", bad)
		}
	}
}

// genTable draws a table from a small set of IDs and values, so that two
// draws share, change and drop entries.
func genTable(t *rapid.T, label string) ([]api.ServiceEndpoints, []api.Peer) {
	ids := rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"a", "b", "c", "d", "e", "f"}), 0, 6, rapid.ID[string]).Draw(t, label+" services")
	var services []api.ServiceEndpoints
	for _, id := range sortedCopy(ids) {
		s := api.ServiceEndpoints{ServiceID: id, Name: "svc-" + id, VIP: rapid.SampledFrom([]string{"10.43.0.1", "10.43.0.2"}).Draw(t, "vip")}
		if rapid.Bool().Draw(t, "ports") {
			s.Ports = []api.PortConfig{{Protocol: "tcp", TargetPort: uint16(rapid.IntRange(1, 3).Draw(t, "port"))}}
		}
		for _, v := range rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"v1", "v2"}), 0, 2, rapid.ID[string]).Draw(t, "versions") {
			g := api.VersionGroup{Version: v, Weight: uint32(rapid.SampledFrom([]int{0, 10, 50, 100}).Draw(t, "weight")), Backends: []api.Backend{}}
			for _, b := range sortedCopy(rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"t1", "t2", "t3", "t4"}), 0, 4, rapid.ID[string]).Draw(t, "backends")) {
				g.Backends = append(g.Backends, api.Backend{TaskID: b, NodeID: "n1", Addr: "10.42.1.2:80",
					Health: rapid.SampledFrom([]api.BackendHealth{api.BackendActive, api.BackendTerminating, api.BackendUnhealthy}).Draw(t, "health")})
			}
			s.Groups = append(s.Groups, g)
		}
		if rapid.Bool().Draw(t, "scoped") {
			s.Scope, s.Aliases = "stack", []string{id}
		}
		services = append(services, s)
	}
	peers := []api.Peer{}
	for _, id := range sortedCopy(rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"n1", "n2", "n3", "n4"}), 0, 4, rapid.ID[string]).Draw(t, label+" peers")) {
		peers = append(peers, peer(id, rapid.SampledFrom([]string{"k1", "k2"}).Draw(t, "key")))
	}
	return services, peers
}

func sortedCopy(xs []string) []string {
	out := append([]string(nil), xs...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// Apply(old, Diff(old, new)) is new, for every node, over a chain of
// changes: each step applies to the table the previous one produced.
func TestApplyDiffIsNew(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		self := rapid.SampledFrom([]string{"n1", "n2", "n5"}).Draw(t, "self")
		s, p := genTable(t, "first")
		for i := range rapid.IntRange(1, 4).Draw(t, "steps") {
			ns, np := genTable(t, fmt.Sprint("step ", i))
			step(t, self, s, p, ns, np)
			s, p = ns, np
		}
	})
}

// FuzzApply applies whatever arrives as a delta: it must never panic, and
// whatever it makes of the table must sum to what the table holds (the
// check the agent relies on).
func FuzzApply(f *testing.F) {
	f.Add([]byte(`{"base":"","services":[{"service_id":"b","groups":[{"version":"v1","weight":5}]}],"removed_peers":["n2"]}`))
	f.Add([]byte(`{"base":"","peers":[{"node_id":"n1"},{"node_id":"n9"}],"removed_services":["a","zz"]}`))
	f.Add([]byte(`{"base":"","services":[{"service_id":"a"},{"service_id":"a","name":"twice"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Hold([]api.ServiceEndpoints{svc("a", 100, "t1"), svc("b", 100)}, []api.Peer{peer("n2", "k2")})
		if err != nil {
			t.Fatal(err)
		}
		var d api.TableDelta
		if json.Unmarshal(b, &d) != nil {
			return
		}
		d.Base = h.Sum().String()
		got, err := h.Apply(d, "n1")
		if err != nil {
			return
		}
		again, err := Hold(got.Services, got.Peers)
		if err != nil {
			t.Fatal(err)
		}
		if again.Sum() != got.Sum() {
			t.Fatalf("applied table sums to %s, its entries to %s", got.Sum(), again.Sum())
		}
		for i := 1; i < len(got.Services); i++ {
			if got.Services[i-1].ServiceID >= got.Services[i].ServiceID {
				t.Fatalf("services out of order or twice: %s, %s", got.Services[i-1].ServiceID, got.Services[i].ServiceID)
			}
		}
	})
}

// EncodeFrom takes an entry's encoding and hash from the version before
// when the caller's key for it is unchanged — trusting the key, which is
// the caller's promise that the entry is the same — and encodes it again
// when the key moved, the entry is new, or no keys were given.
func TestEncodeFromReusesByKey(t *testing.T) {
	a, b, c := svc("a", 0, "10.0.0.1"), svc("b", 0, "10.0.0.2"), svc("c", 0, "10.0.0.3")
	prev, err := EncodeFrom(nil, []api.ServiceEndpoints{a, b}, []uint64{1, 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	changedA, changedB := svc("a", 0, "10.0.0.9"), svc("b", 0, "10.0.0.8")
	cur, err := EncodeFrom(prev, []api.ServiceEndpoints{changedA, changedB, c}, []uint64{1, 7, 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Encode([]api.ServiceEndpoints{a, changedB, c}, nil) // a's key did not move: its old encoding stays
	if !bytes.Equal(cur.Services(), want.Services()) || cur.Sum() != want.Sum() {
		t.Fatalf("EncodeFrom = %s (%s), want %s (%s)", cur.Services(), cur.Sum(), want.Services(), want.Sum())
	}
	if &cur.services[0][0] != &prev.services[0][0] {
		t.Error("the entry whose key did not move was encoded again, not shared")
	}
	// No keys now, or a previous version without keys: every entry encoded.
	for _, tc := range []struct {
		prev *Encoded
		keys []uint64
	}{{prev, nil}, {want, []uint64{1, 7, 3}}} {
		got, err := EncodeFrom(tc.prev, []api.ServiceEndpoints{changedA, changedB, c}, tc.keys, nil)
		if err != nil {
			t.Fatal(err)
		}
		if fresh, _ := Encode([]api.ServiceEndpoints{changedA, changedB, c}, nil); got.Sum() != fresh.Sum() {
			t.Errorf("EncodeFrom(keys %v) reused an entry it had no key for", tc.keys)
		}
	}
	if _, err := EncodeFrom(prev, []api.ServiceEndpoints{a}, []uint64{1, 2}, nil); err == nil {
		t.Error("EncodeFrom took 2 keys for 1 service")
	}
}
