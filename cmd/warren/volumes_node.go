package main

import (
	"context"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/runtime/volume"
)

// newVolumes is the node's volume manager: volumes under <data>/volumes,
// plugins in <data>/volume-plugins (warren-volume-<driver>), where this
// binary is linked as the sshfs driver.
func newVolumes(dataDir, nodeID, self string, log *zap.Logger) (*volume.Manager, error) {
	plugins := filepath.Join(dataDir, "volume-plugins")
	if err := volume.InstallPlugin(plugins, self); err != nil {
		return nil, err
	}
	return volume.NewManager(volume.Options{
		Dir: filepath.Join(dataDir, "volumes"), PluginDir: plugins, NodeID: nodeID,
		Logger: log.With(zap.String("component", "volumes")),
	}), nil
}

// withVolumeDrivers adds the node's volume drivers to its registration, so
// the managers know which volumes it can mount.
func withVolumeDrivers(reg func() api.NodeRegistration, vols *volume.Manager) func() api.NodeRegistration {
	return func() api.NodeRegistration {
		r := reg()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r.VolumeDrivers = vols.Drivers(ctx)
		return r
	}
}
