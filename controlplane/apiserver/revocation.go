package apiserver

import (
	"net/http"

	"github.com/warrenhq/warren/controlplane/store"
)

// Revocation. A node's certificate stays valid for its whole TTL, and
// `node rm` cannot take it back from the node's disk, so the managers refuse
// it instead: `node rm` leaves a tombstone in the store (store.RemovedNode),
// and every request whose certificate — or, for a request a manager
// forwarded, whose original caller — names a tombstoned node is refused
// before its route runs. That covers every route class alike: the node's
// heartbeats, status reports and assignment watches, the manager-only
// routes, and certificate renewal.
//
// Why tombstones rather than "the node must exist": a joining node holds its
// certificate as soon as the join entry commits, and a follower that has not
// applied that entry yet would refuse it; node IDs are random and never
// reused, so a tombstone can never refuse a node that joined later. The
// check is one lookup in the store view per request.

// revokedError is the answer to a removed node's certificate.
func revokedError(nodeID string) error {
	return errorf(http.StatusForbidden, "node %s was removed from the cluster; join again", nodeID)
}

// revoked returns the refusal for the first of ids that names a removed
// node, or nil. Administrator identities are not nodes and never removed.
func (s *Server) revoked(ids ...Identity) error {
	var v *store.View // taken once, and only for a node's identity
	for _, id := range ids {
		if id.NodeID == "" || id.Role != RoleWorker && id.Role != RoleManager {
			continue
		}
		if v == nil {
			v = s.b.View()
		}
		if v.NodeRemoved(id.NodeID) {
			return revokedError(id.NodeID)
		}
	}
	return nil
}

// roleNow is the role a node's certificate acts with: a manager certificate
// of a node the store now says is a worker (`node demote`) acts as a worker
// certificate. Demotion cannot take the manager certificate back from the
// node's disk, and as a manager's it could otherwise read every object and
// vouch, in the forwarded-for header, for an administrator. The one
// exception is the role change itself, which the demoted node completes
// with the certificate it holds. A node the store does not know (a join
// not applied here yet) keeps what its certificate says.
func (s *Server) roleNow(id Identity, rt Route) Identity {
	if id.Role != RoleManager || id.NodeID == "" || rt.Pattern == "/v1/agent/role" {
		return id
	}
	if n, ok := s.b.View().Node(id.NodeID); ok && Role(n.Spec.Role) == RoleWorker {
		id.Role = RoleWorker
	}
	return id
}
