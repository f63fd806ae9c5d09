package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/warrenhq/warren/controlplane/api"
)

// The cached assignments are kept as their head (all but the service table
// and the peers) under keyHead and one key per service and per peer in
// bucketTable, so that a change applied from a delta writes the entries it
// touched rather than the whole table (6.5 MB to encode and fsync per
// change at 50,000 tasks). A cache an older version wrote holds the
// assignments whole under keyAssign: it is read as before and replaced by
// the first write.
var (
	bucketTable = []byte("table")
	keyHead     = []byte("assignments-head")
	// keyTable is the cached table's digest, apart from the head so that
	// checking it does not decode the node's tasks.
	keyTable = []byte("assignments-table")
)

var (
	prefixService = []byte("s/")
	prefixPeer    = []byte("p/")
)

func tableKey(prefix []byte, id string) []byte {
	return append(append([]byte{}, prefix...), id...)
}

// putAssignments persists as. d, when set, is the delta that made as's
// table of the cached one, and only the entries it names are written; the
// whole table is written when d is nil or the cache does not hold d's base
// (an earlier write failed).
func (c *cache) putAssignments(as *api.Assignments, d *api.TableDelta) error {
	head := *as
	head.Services, head.Peers, head.Delta = nil, nil, nil
	hb, err := json.Marshal(head)
	if err != nil {
		return fmt.Errorf("agent cache: encode assignments: %w", err)
	}
	err = c.db.Update(func(tx *bolt.Tx) error {
		st := tx.Bucket(bucketState)
		tb := tx.Bucket(bucketTable)
		if d != nil && tb != nil && !c.holds(st, d.Base) {
			d = nil
		}
		if d == nil || tb == nil {
			if err := tx.DeleteBucket(bucketTable); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
				return err
			}
			if tb, err = tx.CreateBucket(bucketTable); err != nil {
				return err
			}
			if err := putEntries(tb, as.NodeID, as.Services, as.Peers); err != nil {
				return err
			}
		} else {
			for _, id := range d.RemovedServices {
				if err := tb.Delete(tableKey(prefixService, id)); err != nil {
					return err
				}
			}
			for _, id := range d.RemovedPeers {
				if err := tb.Delete(tableKey(prefixPeer, id)); err != nil {
					return err
				}
			}
			if err := putEntries(tb, as.NodeID, d.Services, d.Peers); err != nil {
				return err
			}
		}
		if err := st.Delete(keyAssign); err != nil {
			return err
		}
		if err := st.Put(keyTable, []byte(as.Table)); err != nil {
			return err
		}
		return st.Put(keyHead, hb)
	})
	if err != nil {
		return fmt.Errorf("agent cache: write assignments: %w", err)
	}
	return nil
}

// holds reports whether the cached table's digest is sum.
func (c *cache) holds(st *bolt.Bucket, sum string) bool {
	b := st.Get(keyTable)
	return b != nil && st.Get(keyHead) != nil && string(b) == sum
}

func putEntries(tb *bolt.Bucket, self string, services []api.ServiceEndpoints, peers []api.Peer) error {
	for _, s := range services {
		b, err := json.Marshal(s)
		if err != nil {
			return fmt.Errorf("encode service %s: %w", s.ServiceID, err)
		}
		if err := tb.Put(tableKey(prefixService, s.ServiceID), b); err != nil {
			return err
		}
	}
	for _, p := range peers {
		if p.NodeID == self {
			continue // a delta names the node too; its own table leaves it out
		}
		b, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("encode peer %s: %w", p.NodeID, err)
		}
		if err := tb.Put(tableKey(prefixPeer, p.NodeID), b); err != nil {
			return err
		}
	}
	return nil
}

// cachedAssignments reads what putAssignments (or an older version's
// cache.put) wrote, or nil. Keys sort as the IDs do, so the services and
// peers come back in the managers' order.
func (c *cache) cachedAssignments() (*api.Assignments, error) {
	var out *api.Assignments
	err := c.db.View(func(tx *bolt.Tx) error {
		st := tx.Bucket(bucketState)
		hb := st.Get(keyHead)
		if hb == nil {
			if b := st.Get(keyAssign); b != nil {
				out = &api.Assignments{}
				return json.Unmarshal(b, out)
			}
			return nil
		}
		a := &api.Assignments{}
		if err := json.Unmarshal(hb, a); err != nil {
			return err
		}
		// As a full answer decodes: empty lists, not none.
		a.Services, a.Peers = []api.ServiceEndpoints{}, []api.Peer{}
		if tb := tx.Bucket(bucketTable); tb != nil {
			err := tb.ForEach(func(k, v []byte) error {
				switch {
				case bytes.HasPrefix(k, prefixService):
					var s api.ServiceEndpoints
					if err := json.Unmarshal(v, &s); err != nil {
						return fmt.Errorf("service %s: %w", k[len(prefixService):], err)
					}
					a.Services = append(a.Services, s)
				case bytes.HasPrefix(k, prefixPeer):
					var p api.Peer
					if err := json.Unmarshal(v, &p); err != nil {
						return fmt.Errorf("peer %s: %w", k[len(prefixPeer):], err)
					}
					a.Peers = append(a.Peers, p)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		out = a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("agent cache: read assignments: %w", err)
	}
	return out, nil
}
