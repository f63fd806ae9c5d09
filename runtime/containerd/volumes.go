package containerd

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/core/mount"
)

func (c *controller) mountVolumes(ctx context.Context) error {
	if c.e.o.Volumes == nil {
		return nil
	}
	if err := c.e.o.Volumes.Mount(ctx, &c.task); err != nil {
		return fmt.Errorf("volumes: %w", err)
	}
	return nil
}

// populateVolumes copies the image's content into empty volumes, reading it
// from the new container's own snapshot before the task ever ran in it.
func (c *controller) populateVolumes(ctx context.Context) error {
	if c.e.o.Volumes == nil {
		return nil
	}
	if err := c.e.o.Volumes.Populate(ctx, &c.task, c.withRootfs); err != nil {
		return fmt.Errorf("volumes: %w", err)
	}
	return nil
}

func (c *controller) releaseVolumes(ctx context.Context) error {
	if c.e.o.Volumes == nil {
		return nil
	}
	if err := c.e.o.Volumes.Release(ctx, &c.task); err != nil {
		return fmt.Errorf("volumes: %w", err)
	}
	return nil
}

// withRootfs mounts the container's snapshot read-only on a temporary
// directory for fn.
func (c *controller) withRootfs(ctx context.Context, fn func(root string) error) error {
	ctx = c.e.ns(ctx)
	mounts, err := c.e.client.SnapshotService(c.e.o.Snapshotter).Mounts(ctx, c.id())
	if err != nil {
		return fmt.Errorf("snapshot mounts of %s: %w", c.id(), err)
	}
	return mount.WithReadonlyTempMount(ctx, mounts, fn)
}
