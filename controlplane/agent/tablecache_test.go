package agent

import (
	"encoding/json"
	"reflect"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/tabledelta"
)

func cacheAt(t *testing.T) *cache {
	c, err := openCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.close() })
	return c
}

// cachedTable is a node's full assignments with its digest, as decoded
// from a manager's answer.
func cachedTable(t *testing.T, index uint64, services []api.ServiceEndpoints, peers []api.Peer) *api.Assignments {
	h, err := tabledelta.Hold(services, peers)
	if err != nil {
		t.Fatal(err)
	}
	a := roundTripped(t, api.Assignments{Index: index, NodeID: "n1", Services: services, Peers: peers, Table: h.Sum().String(),
		Tasks: []api.Task{{ID: "t1", ServiceID: "a", NodeID: "n1"}}, Managers: []string{"m1:2377"}})
	return &a
}

func deltaOf(t *testing.T, from, to *api.Assignments, self string) *api.TableDelta {
	base, _ := tabledelta.Encode(from.Services, from.Peers)
	cur, _ := tabledelta.Encode(to.Services, append(to.Peers, api.Peer{NodeID: self, WGPublicKey: "mine"}))
	var d api.TableDelta
	if err := json.Unmarshal(tabledelta.WithBase(base.Sum(), tabledelta.Diff(&base.Shape, cur)), &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

func mustCached(t *testing.T, c *cache) *api.Assignments {
	t.Helper()
	got, err := c.cachedAssignments()
	if err != nil || got == nil {
		t.Fatalf("cached assignments: %v, %v", got, err)
	}
	return got
}

// A table written whole, then changed by deltas, reads back as the full
// table each time; the node's own peer entry, which a delta may carry, is
// not kept.
func TestCacheWritesTheEntriesADeltaNames(t *testing.T) {
	c := cacheAt(t)
	v1 := cachedTable(t, 5, []api.ServiceEndpoints{svcAt("a", 100, "t1"), svcAt("b", 100)}, []api.Peer{{NodeID: "n2", WGPublicKey: "k2"}})
	if err := c.putAssignments(v1, nil); err != nil {
		t.Fatal(err)
	}
	if got := mustCached(t, c); !reflect.DeepEqual(got, v1) {
		t.Fatalf("cached\n%+v\nwant\n%+v", got, v1)
	}
	v2 := cachedTable(t, 7, []api.ServiceEndpoints{svcAt("a", 50, "t1"), svcAt("c", 100)}, []api.Peer{{NodeID: "n3", WGPublicKey: "k3"}})
	if err := c.putAssignments(v2, deltaOf(t, v1, v2, "n1")); err != nil {
		t.Fatal(err)
	}
	if got := mustCached(t, c); !reflect.DeepEqual(got, v2) {
		t.Fatalf("after a delta, cached\n%+v\nwant\n%+v", got, v2)
	}
}

// A delta against a table the cache does not hold (an earlier write
// failed) writes the whole table: applied to the wrong base it would keep
// entries the managers removed.
func TestCacheRewritesWhenItMissedATable(t *testing.T) {
	c := cacheAt(t)
	v0 := cachedTable(t, 3, []api.ServiceEndpoints{svcAt("a", 100), svcAt("x", 100)}, []api.Peer{})
	v1 := cachedTable(t, 5, []api.ServiceEndpoints{svcAt("a", 100)}, []api.Peer{})
	v2 := cachedTable(t, 7, []api.ServiceEndpoints{svcAt("a", 10)}, []api.Peer{})
	if err := c.putAssignments(v0, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.putAssignments(v2, deltaOf(t, v1, v2, "n1")); err != nil {
		t.Fatal(err)
	}
	if got := mustCached(t, c); !reflect.DeepEqual(got.Services, v2.Services) {
		t.Fatalf("cached services %+v, want %+v", got.Services, v2.Services)
	}
}

// The assignments an older version cached whole are read, and replaced by
// the first write.
func TestCacheReadsTheOlderForm(t *testing.T) {
	c := cacheAt(t)
	old := cachedTable(t, 5, []api.ServiceEndpoints{svcAt("a", 100)}, []api.Peer{{NodeID: "n2"}})
	old.Table = "" // older managers sent none
	if err := c.put(keyAssign, old); err != nil {
		t.Fatal(err)
	}
	if got := mustCached(t, c); !reflect.DeepEqual(got, old) {
		t.Fatalf("cached\n%+v\nwant\n%+v", got, old)
	}
	v2 := cachedTable(t, 7, []api.ServiceEndpoints{svcAt("b", 100)}, []api.Peer{})
	if err := c.putAssignments(v2, nil); err != nil {
		t.Fatal(err)
	}
	if got := mustCached(t, c); !reflect.DeepEqual(got, v2) {
		t.Fatalf("cached\n%+v\nwant\n%+v", got, v2)
	}
	_ = c.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketState).Get(keyAssign) != nil {
			t.Error("the older whole form is still cached beside the new one")
		}
		return nil
	})
}
