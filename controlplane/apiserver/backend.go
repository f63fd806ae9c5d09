package apiserver

import (
	"context"
	"crypto/tls"
	"io"
	"time"

	"github.com/warrenhq/warren/controlplane/ca"
	"github.com/warrenhq/warren/controlplane/raftnode"
	"github.com/warrenhq/warren/controlplane/store"
)

// Backend is what the API needs from the manager it runs in. The manager
// composes it from raft, the store, the CA and its data directory; tests use
// a fake. Every method must be safe for concurrent use.
type Backend interface {
	// View is a consistent read-only snapshot of the local store.
	View() *store.View
	// WaitIndex blocks until the local store's index is > after, or ctx ends.
	WaitIndex(ctx context.Context, after uint64) (uint64, error)
	// Apply proposes a batch through raft. On a follower it fails with
	// raftnode.ErrNotLeader (the server forwards writes before calling it);
	// without quorum the error wraps raftnode.ErrNoQuorum.
	Apply(ctx context.Context, b *store.Batch) (uint64, error)

	Raft
	// NodeID is this manager's node ID.
	NodeID() string
	// Signer is the cluster CA with its key, for joins and renewals.
	Signer() Signer
	// KEK is the key-encryption key handed to joining managers.
	KEK() []byte
	// BlobDir is where image archives are kept, by digest.
	BlobDir() string
	// ForwardTLS is the client TLS configuration with this manager's own
	// certificate, used to forward requests to the leader.
	ForwardTLS() *tls.Config
}

// Raft is the leadership and membership side of *raftnode.Node.
type Raft interface {
	IsLeader() bool
	// Leader returns the leader's raft server ID (its node ID) and raft address.
	Leader() (id, addr string)
	// AwaitLeader is Leader that waits, bounded, for a leader to be known;
	// without one the error wraps raftnode.ErrNoQuorum.
	AwaitLeader(ctx context.Context) (id, addr string, err error)
	// VerifyLeader confirms with a quorum that this node still leads.
	VerifyLeader(ctx context.Context) error
	// ReadLease is how long after a VerifyLeader began its answer still
	// holds for reads; 0 makes every linearizable read verify afresh.
	ReadLease() time.Duration
	// WaitCaughtUp blocks until the local store has applied the raft log
	// this manager must answer from; when ctx ends first the error wraps
	// raftnode.ErrCatchingUp.
	WaitCaughtUp(ctx context.Context) error
	AddNonvoter(id, addr string) error
	AddVoter(id, addr string) error
	RemoveServer(id string) error
	DemoteVoter(id string) error
	Members() ([]Member, error)
}

// Member is one raft server.
type Member = raftnode.Member

// Signer issues node certificates.
type Signer interface {
	Sign(csrPEM []byte, id ca.Identity, ttl time.Duration, now time.Time, rnd io.Reader) ([]byte, error)
	CertPEM() []byte
	Digest() string
}

// The manager's concrete parts satisfy the interfaces declared here.
var (
	_ Raft   = (*raftnode.Node)(nil)
	_ Signer = (*ca.CA)(nil)
)
