package runtime

import (
	"context"

	"github.com/warrenhq/warren/controlplane/api"
)

// Volumes makes a task's volumes usable on this node. runtime/volume
// implements it with drivers (the local directory driver and plugins); an
// executor calls it around a container's life. Every method is idempotent,
// because Prepare runs again on each attempt and after the agent restarts.
//
// A volume is always at <VolumeDir>/<name> on the node, whatever its driver:
// a local volume is that directory, a plugin mounts its storage there. So
// the OCI spec (Mounts) needs no driver knowledge.
type Volumes interface {
	// Mount makes every volume of the task present at its node path. It is
	// called before the task's container is created or started.
	Mount(ctx context.Context, task *api.Task) error
	// Populate copies the image's content at each volume mount's target
	// into a volume that is still empty (unless the mount says NoCopy),
	// with the ownership and mode of the image's directory. rootfs runs fn
	// with the container's root filesystem mounted at root.
	Populate(ctx context.Context, task *api.Task, rootfs func(ctx context.Context, fn func(root string) error) error) error
	// Release is called once the task's container is gone; a volume no
	// other task on the node uses is unmounted.
	Release(ctx context.Context, task *api.Task) error
}
