package manager

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/ca"
	"github.com/warrenhq/warren/controlplane/client"
)

// Grant is what a node receives for its new role.
type Grant struct {
	Role    api.NodeRole
	CertPEM []byte
	// Managers are the API addresses of the managers the node talks to next.
	Managers []string
	// For a new manager: the KEK, its own API and raft address, and the raft
	// index it must reach before it asks for its vote.
	KEK         []byte
	APIAddr     string
	PendingVote uint64
}

// Granter signs a certificate for the new key's CSR and says what goes with
// it.
type Granter func(csrPEM []byte) (Grant, error)

// ChangeRole is the one sequence by which a node changes role (node
// promote, node demote, removal from raft): a fresh key, a certificate from
// grant, then the data dir rewritten for the new role. The identity is saved
// before the old role's state is removed, so a crash in between leaves a
// worker with a stale replica rather than a manager without one. The caller
// restarts the process afterwards: nothing here stops the running role.
func ChangeRole(dataDir string, ident NodeIdentity, rnd io.Reader, grant Granter) error {
	kr, err := ca.NewKeyRequest(ident.NodeID, rnd)
	if err != nil {
		return err
	}
	g, err := grant(kr.CSR)
	if err != nil {
		return err
	}
	certs, err := kr.Complete(g.CertPEM)
	if err != nil {
		return err
	}
	next := ident
	next.Role, next.Managers = g.Role, g.Managers
	switch g.Role {
	case api.RoleManager:
		if err := ca.SaveKEK(dataDir, g.KEK); err != nil {
			return err
		}
		next.APIAddr, next.PendingVote = g.APIAddr, g.PendingVote
	case api.RoleWorker:
		next.APIAddr, next.PendingVote = "", 0
	default:
		return fmt.Errorf("unknown role %q", g.Role)
	}
	if err := SaveCerts(dataDir, certs, nil); err != nil {
		return err
	}
	if err := SaveIdentity(dataDir, &next); err != nil {
		return err
	}
	if next.Role == api.RoleWorker {
		// A worker forgets its raft replica, the KEK and the admin socket;
		// its admin credentials stay for the operator.
		_ = os.RemoveAll(filepath.Join(dataDir, RaftDir))
		_ = os.Remove(filepath.Join(dataDir, ca.KEKFile))
		_ = os.Remove(filepath.Join(dataDir, SocketName))
	}
	return nil
}

// WantedRole is the role the operators asked this node to take, when it
// differs from the one it runs as.
func WantedRole(ident NodeIdentity, a *api.Assignments) (api.NodeRole, bool) {
	if a == nil || a.Role == "" || a.Role == ident.Role {
		return "", false
	}
	return a.Role, true
}

// RequestRole asks the managers for the role in a (node promote / demote).
// apiAddr is the address this node serves on if it becomes a manager.
func RequestRole(ctx context.Context, mc *client.Client, a *api.Assignments, apiAddr string) Granter {
	return func(csrPEM []byte) (Grant, error) {
		req := client.RoleChangeRequest{CSRPEM: string(csrPEM)}
		if a.Role == api.RoleManager {
			req.RaftAddr, req.APIAddr = apiAddr, apiAddr
		}
		resp, err := mc.ChangeRole(ctx, req)
		if err != nil {
			return Grant{}, err
		}
		g := Grant{Role: resp.Role, CertPEM: []byte(resp.CertPEM)}
		if resp.Role == api.RoleManager {
			g.Managers, g.KEK, g.APIAddr, g.PendingVote = resp.Managers, resp.KEK, apiAddr, resp.Index
		} else {
			// A demoted node already knows the managers from its assignments.
			g.Managers = a.Managers
		}
		return g, nil
	}
}

// BecomeWorker turns this manager, which raft removed, into a worker: it
// signs itself a worker certificate with the CA key it still holds (a
// removed manager has no quorum to ask). The manager is left running: the
// caller restarts the process, and closing it first would end the daemon
// before the switch.
func (m *Manager) BecomeWorker(rnd io.Reader) error {
	ident := m.Identity()
	return ChangeRole(m.cfg.DataDir, ident, rnd, func(csrPEM []byte) (Grant, error) {
		certPEM, err := m.IssueSelf(ca.RoleWorker, csrPEM)
		if err != nil {
			return Grant{}, err
		}
		var managers []string
		for _, n := range m.Store().View().Nodes() {
			if n.ID != ident.NodeID && n.Status.Manager != nil && n.Status.Manager.APIAddr != "" {
				managers = append(managers, n.Status.Manager.APIAddr)
			}
		}
		return Grant{Role: api.RoleWorker, CertPEM: certPEM, Managers: managers}, nil
	})
}

// PromotedAPIAddr is the address a node promoted to manager will advertise:
// its own address with the port of its API listener (2377 by default).
func PromotedAPIAddr(ident NodeIdentity, listen string) string {
	_, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" {
		port = "2377"
	}
	return net.JoinHostPort(ident.Addr, port)
}
