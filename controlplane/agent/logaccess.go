package agent

import (
	"fmt"
	"slices"

	"github.com/warrenhq/warren/controlplane/api"
)

// MayReadLogs reports whether the manager nodeID — the node of a verified
// manager certificate — may stream this node's task logs: only a node the
// cluster counts as a manager now. A certificate outlives `node rm` and
// `node demote` until it expires; the managers' own routes refuse a
// removed node by its tombstone, and a node, which holds no tombstones,
// refuses what its last assignments do not name among the managers. Until
// a node has assignments naming them (before its first answer, or from
// managers of a release that sent only addresses) the certificate's role
// alone decides.
func (a *Agent) MayReadLogs(nodeID string) error { return mayReadLogs(a.Assignments(), nodeID) }

func mayReadLogs(cur *api.Assignments, nodeID string) error {
	if cur == nil || len(cur.ManagerIDs) == 0 || slices.Contains(cur.ManagerIDs, nodeID) {
		return nil
	}
	return fmt.Errorf("node %s is not one of the cluster's %d managers (removed or demoted)", nodeID, len(cur.ManagerIDs))
}
