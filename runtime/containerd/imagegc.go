package containerd

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	"go.uber.org/zap"

	"github.com/warrenhq/warren/runtime"
)

// CollectImages removes the images of this node's namespace that no
// container has used for gc.Grace (runtime.ImageGC decides); it returns
// the names removed. containerd's own garbage collection then frees their
// content and snapshots.
func (e *Executor) CollectImages(ctx context.Context, gc *runtime.ImageGC, now time.Time) ([]string, error) {
	ctx = e.ns(ctx)
	imgs, err := e.client.ListImages(ctx)
	if err != nil {
		return nil, fmt.Errorf("image gc: list images: %w", err)
	}
	cs, err := e.client.Containers(ctx)
	if err != nil {
		return nil, fmt.Errorf("image gc: list containers: %w", err)
	}
	inUse := map[string]bool{}
	for _, c := range cs {
		if info, err := c.Info(ctx); err == nil && info.Image != "" {
			inUse[info.Image] = true
		}
	}
	names := make([]string, 0, len(imgs))
	for _, im := range imgs {
		names = append(names, im.Name())
	}
	var removed []string
	for _, name := range gc.Collect(names, inUse, now) {
		if err := e.client.ImageService().Delete(ctx, name); err != nil && !errdefs.IsNotFound(err) {
			e.log.Warn("image gc: remove", zap.String("image", name), zap.Error(err))
			continue
		}
		removed = append(removed, name)
	}
	return removed, nil
}

// RunImageGC collects images every interval until ctx ends.
func (e *Executor) RunImageGC(ctx context.Context, grace, interval time.Duration) {
	gc := &runtime.ImageGC{Grace: grace}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if removed, err := e.CollectImages(ctx, gc, time.Now()); err != nil {
			e.log.Warn("image gc", zap.Error(err))
		} else if len(removed) > 0 {
			e.log.Info("image gc: removed images no task used", zap.Strings("images", removed), zap.Duration("grace", grace))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
