package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/tabledelta"
)

// DeltaManager is a Manager that can ask for only what changed in the
// table the node holds; *client.Client implements it. With a Manager that
// does not, every answer is the full table.
type DeltaManager interface {
	AssignmentsFrom(ctx context.Context, index uint64, base string, wait time.Duration) (*api.Assignments, error)
}

var _ DeltaManager = (*client.Client)(nil)

// heldTable is the current assignments' table with the hash of each entry
// (tabledelta.Held), so a delta is applied and checked without encoding
// the whole table again. Touched only by the watch loop.
type heldTable struct {
	of   *api.Assignments // the assignments it was computed for
	held *tabledelta.Held // nil: no usable base (a manager without deltas, or a digest that did not match)
	// warned says the managers' digest was found not to match once, so
	// that it is logged once rather than on every answer.
	warned bool
}

// errDiverged is a delta that did not make the managers' table of the
// node's copy.
var errDiverged = errors.New("service table after the delta differs from the managers'")

// query asks for the assignments after index, naming the table the node
// holds when the managers can send a delta against it.
func (a *Agent) query(ctx context.Context, index uint64, cur *api.Assignments, full bool) (*api.Assignments, error) {
	dm, ok := a.cfg.Manager.(DeltaManager)
	if !ok {
		return a.cfg.Manager.Assignments(ctx, index, a.cfg.Wait)
	}
	base := ""
	if h := a.heldFor(cur); h != nil && !full {
		base = h.Sum().String()
	}
	return dm.AssignmentsFrom(ctx, index, base, a.cfg.Wait)
}

// heldFor is cur's table with its hashes, computed once per assignments;
// nil when cur came from a manager that sends no digest or its digest is
// not what the node makes of the table.
func (a *Agent) heldFor(cur *api.Assignments) *tabledelta.Held {
	if cur == nil || cur.Table == "" {
		return nil
	}
	if a.tbl.of == cur {
		return a.tbl.held
	}
	a.tbl.of, a.tbl.held = cur, nil
	h, err := tabledelta.Hold(cur.Services, cur.Peers)
	if err != nil {
		a.log.Warn("hash the service table", zap.Error(err))
		return nil
	}
	if h.Sum().String() != cur.Table {
		// A manager of another version, whose entries carry fields this
		// node does not know: deltas cannot be checked, so none are asked for.
		if !a.tbl.warned {
			a.tbl.warned = true
			a.log.Info("the managers' table digest is not this node's; asking for full tables", zap.String("managers", cur.Table), zap.Stringer("node", h.Sum()))
		}
		return nil
	}
	a.tbl.held = h
	return h
}

// expand turns a delta answer into full assignments: as with the
// services and peers of prev changed by as.Delta, and their hashes. It
// fails, and the node asks for the full table, when the delta is not
// against prev's table or does not end with the managers' digest.
func (a *Agent) expand(prev, as *api.Assignments) (*api.Assignments, *tabledelta.Held, error) {
	h := a.heldFor(prev)
	if h == nil {
		return nil, nil, fmt.Errorf("table delta against %s, but the node holds no table it can apply it to", as.Delta.Base)
	}
	next, err := h.Apply(*as.Delta, a.cfg.NodeID)
	if err != nil {
		return nil, nil, err
	}
	if next.Sum().String() != as.Table {
		return nil, nil, fmt.Errorf("%w: %s, want %s (index %d)", errDiverged, next.Sum(), as.Table, as.Index)
	}
	out := *as
	out.Services, out.Peers, out.Delta = next.Services, next.Peers, nil
	return &out, next, nil
}

// hold records that h is the table of cur, the assignments just accepted
// (accept copies them, so they are known only after).
func (a *Agent) hold(cur *api.Assignments, h *tabledelta.Held) {
	a.tbl = heldTable{of: cur, held: h, warned: a.tbl.warned}
}
