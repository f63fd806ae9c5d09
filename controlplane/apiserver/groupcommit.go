package apiserver

import (
	"context"
	"sync"
)

// groupCommit is the queue of a group commit: what callers add while one
// batch is being applied goes out together in the next. One goroutine
// applies at a time; the add that finds none running starts it, and it
// stops when it finds the queue empty. Status reports (reportbatch.go) and
// service creates (createbatch.go) are committed this way.
type groupCommit[T any] struct {
	mu      sync.Mutex
	pending []T
	running bool
}

// add queues item, and starts flush unless it runs: flush is handed each
// batch taken from the queue until none is left.
func (g *groupCommit[T]) add(item T, flush func([]T)) {
	g.mu.Lock()
	g.pending = append(g.pending, item)
	start := !g.running
	g.running = true
	g.mu.Unlock()
	if start {
		go g.drain(flush)
	}
}

func (g *groupCommit[T]) drain(flush func([]T)) {
	for {
		g.mu.Lock()
		batch := g.pending
		g.pending = nil
		if len(batch) == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		flush(batch)
	}
}

// queued is how many items wait for the next batch.
func (g *groupCommit[T]) queued() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.pending)
}

// commitResult is what one caller's part of a batch came to.
type commitResult struct {
	index uint64
	err   error
}

// awaitCommit waits for done. A caller whose context ends stops waiting,
// but its part still goes out with the batch.
func awaitCommit(ctx context.Context, done <-chan commitResult) (uint64, error) {
	select {
	case r := <-done:
		return r.index, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
