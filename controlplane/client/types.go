package client

import (
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// The wire types of the v1 API that are not stored objects. They live here,
// next to the calls that send them, so the CLI and the agent need nothing but
// this package and api; the server imports them from here.

// Error is the body of every non-2xx answer.
type Error struct {
	// Message names the problem, e.g. `service "web": replicas: must be ≥ 0`.
	Message string `json:"error"`
	// Leader is set on 503 answers from a follower that could not reach the
	// leader, so a caller can retry there directly.
	Leader string `json:"leader,omitempty"`
}

// ClusterInfo is what `warren info` shows; it carries no secret.
type ClusterInfo struct {
	ID        string                 `json:"id"`
	CreatedAt time.Time              `json:"created_at"`
	Network   api.ClusterNetworkSpec `json:"network"`
	CADigest  string                 `json:"ca_digest"`
	CACertPEM string                 `json:"ca_cert_pem"`
	Index     uint64                 `json:"index"`
	Managers  []ManagerInfo          `json:"managers"`
	// Served is the node ID of the manager that answered.
	Served string `json:"served"`
}

// ManagerInfo is one raft member.
type ManagerInfo struct {
	NodeID   string `json:"node_id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr,omitempty"`
	Voter    bool   `json:"voter"`
	Leader   bool   `json:"leader"`
}

// JoinRequest is sent without a client certificate; the token is its only credential.
type JoinRequest struct {
	Token string `json:"token"`
	// Role is "worker" or "manager"; it must match the token.
	Role   string `json:"role"`
	CSRPEM string `json:"csr_pem"`
	// Hostname and Addr describe the joiner; Addr is the advertised IP.
	Hostname string `json:"hostname"`
	Addr     string `json:"addr"`
	// RaftAddr and APIAddr are required for managers.
	RaftAddr string `json:"raft_addr,omitempty"`
	APIAddr  string `json:"api_addr,omitempty"`
}

// JoinResponse hands the joiner everything it needs to start.
type JoinResponse struct {
	NodeID    string             `json:"node_id"`
	CertPEM   string             `json:"cert_pem"`
	CACertPEM string             `json:"ca_cert_pem"`
	Managers  []string           `json:"managers"` // API addresses
	Network   api.ClusterNetwork `json:"network"`
	// KEK is the key-encryption key for the CA key and secrets; only for managers.
	KEK []byte `json:"kek,omitempty"`
	// UnlockKey is the autolock unlock key sealed under the KEK, for a
	// manager joining a cluster with autolock on.
	UnlockKey []byte `json:"unlock_key,omitempty"`
	// Index is the raft index at which the joiner was recorded. A joining
	// manager calls ManagerReady once its own store has reached it.
	Index uint64 `json:"index"`
}

// ManagerReadyRequest tells the leader a nonvoter has caught up and may vote.
type ManagerReadyRequest struct {
	RaftAddr string `json:"raft_addr"`
	Index    uint64 `json:"index"`
}

// TokenInfo describes one join token. Token is only filled when it was just
// created: the cluster keeps hashes, never the secrets.
type TokenInfo struct {
	Role    string    `json:"role"`
	Token   string    `json:"token,omitempty"`
	Expires time.Time `json:"expires,omitempty"`
	Set     bool      `json:"set"`
}

// RotateTokenRequest asks for a new token; TTL 0 means it never expires.
type RotateTokenRequest struct {
	TTL api.Duration `json:"ttl,omitempty"`
}

// NodeUpdate changes what operators control on a node. Nil fields are left alone.
type NodeUpdate struct {
	Availability *api.Availability `json:"availability,omitempty"`
	LabelAdd     map[string]string `json:"label_add,omitempty"`
	LabelRm      []string          `json:"label_rm,omitempty"`
}

// ScaleRequest sets a replicated service's replica count.
type ScaleRequest struct {
	Replicas uint64 `json:"replicas"`
}

// WriteResult is the answer to every write: the raft index it committed at.
type WriteResult struct {
	Index uint64 `json:"index"`
	ID    string `json:"id,omitempty"`
	// Generation is the service's Generation after an operator's write to
	// it; the CLI waits for the orchestrator to have observed it.
	Generation uint64 `json:"generation,omitempty"`
	// Warnings are things the write did but the caller should know (an
	// image that could not be pinned to a digest).
	Warnings []string `json:"warnings,omitempty"`
}

// RenewRequest carries a CSR for a new certificate with the caller's identity.
type RenewRequest struct {
	CSRPEM string `json:"csr_pem"`
}

// RenewResponse is the renewed certificate.
type RenewResponse struct {
	CertPEM   string `json:"cert_pem"`
	CACertPEM string `json:"ca_cert_pem"`
}

// Headers and query parameters shared by client and server.
const (
	// HeaderForwardedFor carries the original caller's identity when a
	// follower forwards a request to the leader. Only trusted from managers.
	HeaderForwardedFor = "Warren-Forwarded-For"
	// HeaderConsistency is "stale" when a read was served from a local view
	// that may lag the leader.
	HeaderConsistency = "Warren-Consistency"
	// HeaderIndex is the store index an answer was read at.
	HeaderIndex = "Warren-Index"
)

// RoleChangeRequest is sent by a node whose role the operators changed
// (node promote / demote): a CSR for the new certificate, and for a new
// manager the addresses its raft and API will listen on.
type RoleChangeRequest struct {
	CSRPEM   string `json:"csr_pem"`
	RaftAddr string `json:"raft_addr,omitempty"`
	APIAddr  string `json:"api_addr,omitempty"`
}

// RoleChangeResponse carries the certificate for the new role; a new
// manager also gets the KEK and the raft index to catch up to before it
// asks for its vote (ManagerReady).
type RoleChangeResponse struct {
	Role      api.NodeRole `json:"role"`
	CertPEM   string       `json:"cert_pem"`
	CACertPEM string       `json:"ca_cert_pem"`
	KEK       []byte       `json:"kek,omitempty"`
	Index     uint64       `json:"index,omitempty"`
	Managers  []string     `json:"managers,omitempty"`
}
