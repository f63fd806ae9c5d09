package containerd

import (
	"context"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/warrenhq/warren/controlplane/api"
)

// pullSampleEvery is how often a running pull's progress is sampled. It is
// cheap (the bytes counted in memory, one ListStatuses, now and then an
// Info for a layer not read yet); the Worker decides how much of it
// reaches the managers.
const pullSampleEvery = 250 * time.Millisecond

// storedRecheck: how many samples apart the store is asked again about a
// layer this pull has not read yet.
const storedRecheck = 8

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
	looked map[digest.Digest]int  // samples that found a layer not stored
	// read is how far this pull's own download of each layer is, counted
	// as the bytes pass: the content store's ingest offset moves only
	// when containerd's copy buffer (1 MB) is written, too coarse for a
	// small layer on a slow link.
	read map[digest.Digest]*atomic.Int64
}

// resolver has the layers fetched through r counted in w.
func (w *pullWatch) resolver(r remotes.Resolver) remotes.Resolver { return countingResolver{r, w} }

type countingResolver struct {
	remotes.Resolver
	w *pullWatch
}

func (r countingResolver) Fetcher(ctx context.Context, ref string) (remotes.Fetcher, error) {
	f, err := r.Resolver.Fetcher(ctx, ref)
	if err != nil {
		return nil, err
	}
	return countingFetcher{f, r.w}, nil
}

type countingFetcher struct {
	remotes.Fetcher
	w *pullWatch
}

func (f countingFetcher) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	rc, err := f.Fetcher.Fetch(ctx, desc)
	if err != nil || !images.IsLayerType(desc.MediaType) {
		return rc, err
	}
	f.w.mu.Lock()
	if f.w.read == nil {
		f.w.read = map[digest.Digest]*atomic.Int64{}
	}
	pos := &atomic.Int64{} // a new download (a retry) starts again
	f.w.read[desc.Digest] = pos
	f.w.mu.Unlock()
	c := &countingReader{rc: rc, pos: pos}
	if _, ok := rc.(io.Seeker); ok {
		// A download resumed after a cut seeks to what the store holds;
		// the Seeker must stay visible for containerd to do it.
		return &countingSeeker{c}, nil
	}
	return c, nil
}

// countingReader keeps pos at the position in the blob of what was read.
type countingReader struct {
	rc  io.ReadCloser
	pos *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	c.pos.Add(int64(n))
	return n, err
}

func (c *countingReader) Close() error { return c.rc.Close() }

type countingSeeker struct{ *countingReader }

func (c *countingSeeker) Seek(off int64, whence int) (int64, error) {
	n, err := c.rc.(io.Seeker).Seek(off, whence)
	if err == nil {
		c.pos.Store(n)
	}
	return n, err
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
			w.seen, w.stored, w.looked = map[digest.Digest]bool{}, map[digest.Digest]bool{}, map[digest.Digest]int{}
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
	read := make(map[digest.Digest]int64, len(w.read))
	for d, pos := range w.read {
		read[d] = pos.Load()
	}
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
		// A layer waiting for its download is asked about every
		// storedRecheck samples, not at each: found at the first look when
		// the node has it already, later only if another pull brought it.
		w.mu.Lock()
		due := w.looked[d]%storedRecheck == 0
		w.looked[d]++
		w.mu.Unlock()
		if !due {
			return false
		}
		if _, err := cs.Info(ctx, d); err == nil {
			w.mu.Lock()
			w.stored[d] = true
			w.mu.Unlock()
			return true
		}
		return false
	}
	return layerBytes(layers, active, read, stored)
}

// layerBytes is a pull's progress: of the layers' sizes, what is in the
// store (a layer shared with an image already here counts whole) plus how
// far the downloads in flight are: the bytes this pull read, or the
// content store's ingest offset when further (another pull of the layer
// downloads it; this one waits). Ingests are matched by the digest their
// ref ends in (containerd's "layer-<digest>"), so a prefix added by a
// future containerd still matches.
func layerBytes(layers []ocispec.Descriptor, active []content.Status, read map[digest.Digest]int64, stored func(digest.Digest) bool) (done, total int64) {
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
		off, inFlight := offsets[l.Digest]
		if r, ok := read[l.Digest]; ok {
			off, inFlight = max(off, r), true
		}
		if inFlight && off < l.Size {
			done += off
		} else if inFlight || stored(l.Digest) {
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
