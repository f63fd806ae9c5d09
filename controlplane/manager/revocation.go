package manager

import (
	"crypto/tls"

	"github.com/warrenhq/warren/controlplane/ca"
	"github.com/warrenhq/warren/controlplane/store"
)

// raftPeerRemoved reports whether a raft connection's certificate names a
// node `node rm` removed. A node demoted and then removed may still hold
// the manager certificate it had before, valid until it expires; the API
// refuses it (apiserver revocation.go), and so must the raft port, or it
// could still send raft RPCs — a vote request with a higher term alone
// makes a follower step down.
func raftPeerRemoved(cs tls.ConnectionState, v *store.View) (string, bool) {
	id, ok := ca.IdentityFromConn(cs)
	if !ok {
		return "", false // the handshake already refused a raft peer without a manager certificate
	}
	return id.NodeID, v.NodeRemoved(id.NodeID)
}
