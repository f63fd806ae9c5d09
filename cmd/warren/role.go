package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/agent"
	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/ca"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/manager"
)

// roleWatcher completes `node promote` and `node demote` on this node: when
// the role in its assignments differs from the one it runs as, it obtains a
// certificate for the new role, rewrites its identity and restarts itself
// (containers keep running and are adopted, as after any restart).
type roleWatcher struct {
	log     *zap.Logger
	dataDir string
	ident   *manager.NodeIdentity
	agent   *agent.Agent
	mc      *client.Client
	apiAddr string // this node's API/raft address if it becomes a manager
}

func (rw *roleWatcher) run(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a := rw.agent.Assignments()
		if a == nil || a.Role == "" || a.Role == rw.ident.Role {
			continue
		}
		if err := rw.change(ctx, a); err != nil {
			rw.log.Warn("role change", zap.String("to", string(a.Role)), zap.Error(err))
			continue
		}
		rw.log.Info("role changed: restarting as "+string(a.Role), zap.String("to", string(a.Role)))
		self, err := os.Executable()
		if err != nil {
			rw.log.Error("restart after role change: restart warren by hand", zap.Error(err))
			return
		}
		_ = rw.log.Sync()
		err = syscall.Exec(self, os.Args, os.Environ())
		rw.log.Error("restart after role change: restart warren by hand", zap.Error(err))
		return
	}
}

func (rw *roleWatcher) change(ctx context.Context, a *api.Assignments) error {
	kr, err := ca.NewKeyRequest(rw.ident.NodeID, rand.Reader)
	if err != nil {
		return err
	}
	req := client.RoleChangeRequest{CSRPEM: string(kr.CSR)}
	if a.Role == api.RoleManager {
		req.RaftAddr, req.APIAddr = rw.apiAddr, rw.apiAddr
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := rw.mc.ChangeRole(cctx, req)
	if err != nil {
		return err
	}
	certs, err := kr.Complete([]byte(resp.CertPEM))
	if err != nil {
		return err
	}
	next := *rw.ident
	next.Role = resp.Role
	switch resp.Role {
	case api.RoleManager:
		if err := ca.SaveKEK(rw.dataDir, resp.KEK); err != nil {
			return err
		}
		next.APIAddr, next.PendingVote = rw.apiAddr, resp.Index
		next.Managers = resp.Managers
	case api.RoleWorker:
		// A demoted manager forgets its raft replica and the KEK; its
		// admin credentials stay for the operator.
		next.APIAddr, next.PendingVote = "", 0
		next.Managers = a.Managers
		_ = os.RemoveAll(filepath.Join(rw.dataDir, manager.RaftDir))
		_ = os.Remove(filepath.Join(rw.dataDir, ca.KEKFile))
		_ = os.Remove(filepath.Join(rw.dataDir, manager.SocketName))
	default:
		return fmt.Errorf("unknown role %q", resp.Role)
	}
	if err := manager.SaveCerts(rw.dataDir, certs, nil); err != nil {
		return err
	}
	return manager.SaveIdentity(rw.dataDir, &next)
}

// apiAddrFor is the address a node promoted to manager will advertise.
func apiAddrFor(ident *manager.NodeIdentity, listen string) string {
	_, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" {
		port = "2377"
	}
	return net.JoinHostPort(ident.Addr, port)
}

// becomeWorker turns a manager that raft removed into a worker: it signs
// itself a worker certificate with the CA key it still holds, forgets its
// raft replica and the KEK, and restarts.
func becomeWorker(log *zap.Logger, dataDir string) func(m *manager.Manager) {
	return func(m *manager.Manager) {
		fail := func(err error) {
			log.Error("becoming a worker after removal from raft: restart warren by hand", zap.Error(err))
		}
		ident := m.Identity()
		kr, err := ca.NewKeyRequest(ident.NodeID, rand.Reader)
		if err != nil {
			fail(err)
			return
		}
		certPEM, err := m.IssueSelf(ca.RoleWorker, kr.CSR)
		if err != nil {
			fail(err)
			return
		}
		certs, err := kr.Complete(certPEM)
		if err != nil {
			fail(err)
			return
		}
		var managers []string
		for _, n := range m.Store().View().Nodes() {
			if n.ID != ident.NodeID && n.Status.Manager != nil && n.Status.Manager.APIAddr != "" {
				managers = append(managers, n.Status.Manager.APIAddr)
			}
		}
		ident.Role, ident.APIAddr, ident.PendingVote, ident.Managers = api.RoleWorker, "", 0, managers
		// The manager is left running until the exec below replaces the
		// process: closing it first would end the daemon before the switch.
		if err := manager.SaveCerts(dataDir, certs, nil); err != nil {
			fail(err)
			return
		}
		if err := manager.SaveIdentity(dataDir, &ident); err != nil {
			fail(err)
			return
		}
		_ = os.RemoveAll(filepath.Join(dataDir, manager.RaftDir))
		_ = os.Remove(filepath.Join(dataDir, ca.KEKFile))
		log.Info("this node is now a worker: restarting")
		_ = log.Sync()
		self, err := os.Executable()
		if err != nil {
			fail(err)
			return
		}
		fail(syscall.Exec(self, os.Args, os.Environ()))
	}
}
