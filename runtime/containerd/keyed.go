package containerd

import (
	"context"
	"sync"
)

// keyedMutex serialises work by key: the tasks of one image starting at
// once wait for the first to fetch and unpack it, then find it local,
// instead of each fetching the whole archive (over a site's WAN link, and
// buffered in memory while containerd imports it: ten tasks of a 3 MB
// image held 30 MB of HTTP/2 buffers in the daemon).
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	ch    chan struct{} // holds a token while taken
	users int
}

// lock takes key's lock, or gives up when ctx ends, and returns its
// release.
func (k *keyedMutex) lock(ctx context.Context, key string) (unlock func(), err error) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{ch: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.users++
	k.mu.Unlock()
	leave := func() {
		k.mu.Lock()
		if l.users--; l.users == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; leave() }, nil
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
}
