package main

import (
	"context"
	"crypto/rand"
	"os"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/agent"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/manager"
)

// roleWatcher completes `node promote` and `node demote` on this node: when
// the role in its assignments differs from the one it runs as, it changes
// role (manager.ChangeRole) and restarts itself (containers keep running and
// are adopted, as after any restart).
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
		role, ok := manager.WantedRole(*rw.ident, a)
		if !ok {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := manager.ChangeRole(rw.dataDir, *rw.ident, rand.Reader, manager.RequestRole(cctx, rw.mc, a, rw.apiAddr))
		cancel()
		if err != nil {
			rw.log.Warn("role change", zap.String("to", string(role)), zap.Error(err))
			continue
		}
		rw.log.Info("role changed: restarting as "+string(role), zap.String("to", string(role)))
		restart(rw.log, "restart after role change: restart warren by hand")
		return
	}
}

// becomeWorker turns a manager that raft removed into a worker and
// restarts.
func becomeWorker(log *zap.Logger) func(m *manager.Manager) {
	return func(m *manager.Manager) {
		if err := m.BecomeWorker(rand.Reader); err != nil {
			log.Error("becoming a worker after removal from raft: restart warren by hand", zap.Error(err))
			return
		}
		log.Info("this node is now a worker: restarting")
		restart(log, "becoming a worker after removal from raft: restart warren by hand")
	}
}

// restart replaces this process with a fresh start of the same binary; it
// returns only when that fails, which is logged with failMsg.
func restart(log *zap.Logger, failMsg string) {
	_ = log.Sync()
	self, err := os.Executable()
	if err != nil {
		log.Error(failMsg, zap.Error(err))
		return
	}
	err = syscall.Exec(self, os.Args, os.Environ())
	log.Error(failMsg, zap.Error(err))
}
