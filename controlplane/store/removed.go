package store

import (
	"fmt"
	"time"
)

// RemovedNode is the tombstone `node rm` leaves. A removed node still holds
// a certificate the cluster CA signed, valid until it expires; the API
// refuses it by this record (apiserver revocation.go). Node IDs are random
// and never reused, so a tombstone can never shadow a node that joins later,
// and the set only grows by one entry per removal.
type RemovedNode struct {
	ID        string    `json:"id"`
	RemovedAt time.Time `json:"removed_at"`
}

// applyRemovedNodes deletes each node and records its tombstone, in the same
// entry, so no manager ever sees the node gone but its certificate still
// good.
func (t *txn) applyRemovedNodes(b *Batch) error {
	for i, id := range b.RemoveNodes {
		if id == "" {
			return fmt.Errorf("remove node %d: %w: empty id", i, ErrInvalid)
		}
		t.nodes.Delete([]byte(id))
		if _, ok := t.removed.Get([]byte(id)); !ok {
			t.removed.Insert([]byte(id), &RemovedNode{ID: id, RemovedAt: t.now})
		}
	}
	return nil
}

// wasRemoved is the FSM's own check: a status report a removed node sent
// just before its removal may be applied after it, and must not bring the
// node back.
func (t *txn) wasRemoved(id string) bool {
	_, ok := t.removed.Get([]byte(id))
	return ok
}

// NodeRemoved reports whether the node was removed from the cluster. It is
// one radix-tree lookup, cheap enough for every API request.
func (v *View) NodeRemoved(id string) bool {
	_, ok := v.st.removed.Get([]byte(id))
	return ok
}

// RemovedNodes returns every tombstone, sorted by node ID.
func (v *View) RemovedNodes() []RemovedNode { return list[RemovedNode](v.st.removed, nil) }
