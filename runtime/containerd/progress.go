package containerd

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/warrenhq/warren/controlplane/api"
)

// pullSampleEvery is how often a running pull's progress is read from the
// content store. It is cheap (one ListStatuses, an Info per layer not yet
// seen complete); the Worker decides how much of it reaches the managers.
const pullSampleEvery = 250 * time.Millisecond

// pullFollowers are the tasks waiting for an image's pull, by the image's
// name: the tasks of one image that start together fetch it once (images
// lock), and every one of them shows the one pull's progress.
type pullFollowers struct {
	mu   sync.Mutex
	next int
	by   map[string]map[int]follower
}

type follower struct {
	ref string // as the task names it, for the operator
	fn  func(api.PullProgress)
}

// follow has fn told of name's pulls until the returned func is called;
// after it returned fn is not called again.
func (f *pullFollowers) follow(name, ref string, fn func(api.PullProgress)) (stop func()) {
	if fn == nil {
		return func() {}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.by == nil {
		f.by = map[string]map[int]follower{}
	}
	if f.by[name] == nil {
		f.by[name] = map[int]follower{}
	}
	f.next++
	id := f.next
	f.by[name][id] = follower{ref: ref, fn: fn}
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.by[name], id)
		if len(f.by[name]) == 0 {
			delete(f.by, name)
		}
	}
}

// publish tells name's followers; under the lock, so that stop waits for
// a call in flight.
func (f *pullFollowers) publish(name string, done, total int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fl := range f.by[name] {
		fl.fn(api.PullProgress{Ref: fl.ref, Done: done, Total: total})
	}
}

// pullWatch is one pull's layers as containerd's fetch handlers dispatch
// them (manifests first, so the set grows while the pull runs).
type pullWatch struct {
	mu     sync.Mutex
	layers []ocispec.Descriptor
	seen   map[digest.Digest]bool
	stored map[digest.Digest]bool // complete in the content store
}

// handler records the layers of the platform being pulled: containerd runs
// it on each descriptor before fetching it, after the platform filter.
func (w *pullWatch) handler() images.Handler {
	return images.HandlerFunc(func(_ context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if !images.IsLayerType(desc.MediaType) {
			return nil, nil
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.seen == nil {
			w.seen, w.stored = map[digest.Digest]bool{}, map[digest.Digest]bool{}
		}
		if !w.seen[desc.Digest] {
			w.seen[desc.Digest] = true
			w.layers = append(w.layers, desc)
		}
		return nil, nil
	})
}

// sample reads the content store: the ingests in flight, and whether the
// layers without one are complete.
func (w *pullWatch) sample(ctx context.Context, cs content.Store) (done, total int64) {
	w.mu.Lock()
	layers := append([]ocispec.Descriptor(nil), w.layers...)
	w.mu.Unlock()
	if len(layers) == 0 {
		return 0, 0
	}
	active, err := cs.ListStatuses(ctx)
	if err != nil {
		active = nil // a sample missed; the next one may get through
	}
	stored := func(d digest.Digest) bool {
		w.mu.Lock()
		ok := w.stored[d]
		w.mu.Unlock()
		if ok {
			return true
		}
		if _, err := cs.Info(ctx, d); err == nil {
			w.mu.Lock()
			w.stored[d] = true
			w.mu.Unlock()
			return true
		}
		return false
	}
	return layerBytes(layers, active, stored)
}

// layerBytes is a pull's progress: of the layers' sizes, what is in the
// store (a layer shared with an image already here counts whole) plus the
// offsets of the downloads in flight. Ingests are matched by the digest
// their ref ends in (containerd's "layer-<digest>"), so a prefix added by
// a future containerd still matches.
func layerBytes(layers []ocispec.Descriptor, active []content.Status, stored func(digest.Digest) bool) (done, total int64) {
	offsets := map[digest.Digest]int64{}
	for _, st := range active {
		d := st.Expected
		if i := strings.LastIndex(st.Ref, "sha256:"); d == "" && i >= 0 {
			d = digest.Digest(st.Ref[i:])
		}
		if d != "" {
			offsets[d] = st.Offset
		}
	}
	for _, l := range layers {
		total += l.Size
		if off, ok := offsets[l.Digest]; ok {
			done += min(off, l.Size)
		} else if stored(l.Digest) {
			done += l.Size
		}
	}
	return done, total
}

// samplePull publishes name's progress every pullSampleEvery while a pull
// runs; the returned func stops it and waits, so nothing is published
// after the pull returned.
func (e *Executor) samplePull(ctx context.Context, name string, w *pullWatch) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(pullSampleEvery)
		defer t.Stop()
		var last [2]int64
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			d, n := w.sample(ctx, e.client.ContentStore())
			if n > 0 && [2]int64{d, n} != last {
				last = [2]int64{d, n}
				e.pulls.publish(name, d, n)
			}
		}
	}()
	return func() { cancel(); <-done }
}
