package main

import (
	"path/filepath"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/agent"
	"github.com/warrenhq/warren/runtime"
)

// secretsRoot is the node's secret tmpfs. It is outside the data dir on
// purpose: backups and disk images of the data dir never include it.
func secretsRoot(nodeID string) string { return filepath.Join("/run/warren", nodeID, "secrets") }

// newSecretFS mounts the node's secret tmpfs. Where there is none (not
// Linux) the node runs no task that mounts secrets.
func newSecretFS(nodeID string, log *zap.Logger) agent.SecretFS {
	fs, err := runtime.NewSecretFS(secretsRoot(nodeID))
	if err != nil {
		log.Warn("no secret tmpfs: tasks that mount secrets or configs will not start here", zap.Error(err))
		return nil
	}
	return secretFS{fs}
}

// secretFS adapts runtime.SecretFS to the agent's interface.
type secretFS struct{ *runtime.SecretFS }

func (s secretFS) Set(files map[string][]agent.SecretFile, keep []string) error {
	out := make(map[string][]runtime.SecretFile, len(files))
	for id, fs := range files {
		rs := make([]runtime.SecretFile, len(fs))
		for i, f := range fs {
			rs[i] = runtime.SecretFile{Path: f.Path, Data: f.Data, UID: f.UID, GID: f.GID, Mode: f.Mode, InPlace: f.InPlace}
		}
		out[id] = rs
	}
	return s.SecretFS.Set(out, keep)
}
