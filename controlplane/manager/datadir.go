package manager

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/warrenhq/warren/controlplane/api"
)

// Layout of a node's data directory (shared by the manager and the agent).
const (
	NodeFile   = "node.json" // identity: node ID, role, managers
	CertsDir   = "certs"     // this node's key and certificate, and the CA certificate
	AdminDir   = "admin"     // administrator credentials written at init
	RaftDir    = "raft"
	BlobsDir   = "images"
	SocketName = "warren.sock"
	CAFile     = "ca.crt"
	AuditFile  = "audit.log" // administrative writes served here, one JSON line each
)

// NodeIdentity is what a node remembers about itself between restarts.
type NodeIdentity struct {
	NodeID   string       `json:"node_id"`
	Role     api.NodeRole `json:"role"`
	Managers []string     `json:"managers"`
	// Addr is the node's advertised IP; APIAddr the manager's host:port.
	Addr    string             `json:"addr"`
	APIAddr string             `json:"api_addr,omitempty"`
	Network api.ClusterNetwork `json:"network"`
	// PendingVote is set on a node promoted to manager until raft made it a
	// voter: the raft index it must reach before asking for its vote.
	PendingVote uint64 `json:"pending_vote,omitempty"`
}

// LoadIdentity reads node.json; os.ErrNotExist means a fresh data dir.
func LoadIdentity(dataDir string) (*NodeIdentity, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, NodeFile))
	if err != nil {
		return nil, err
	}
	var id NodeIdentity
	if err := json.Unmarshal(b, &id); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dataDir, NodeFile), err)
	}
	if id.NodeID == "" {
		return nil, fmt.Errorf("%s: no node ID", filepath.Join(dataDir, NodeFile))
	}
	return &id, nil
}

// SaveIdentity writes node.json atomically.
func SaveIdentity(dataDir string, id *NodeIdentity) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dataDir, NodeFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dataDir, NodeFile))
}

// Initialized reports whether dataDir already belongs to a node.
func Initialized(dataDir string) bool {
	_, err := LoadIdentity(dataDir)
	return err == nil || !errors.Is(err, os.ErrNotExist)
}
