package apiserver

import (
	"context"
	"sync"
	"time"

	"github.com/warrenhq/warren/controlplane/store"
)

// reportBatcher commits the status reports of many nodes in one raft entry
// (group commit): while one batch is being applied the next ones queue, and
// the queue goes out as a single batch when it returns. With hundreds of
// nodes reporting at once — every node starting its share of a new service
// — one entry per report made raft, not the nodes, the limit on how fast
// tasks came up. Task status updates carry no expectations, so batching
// them changes no outcome.
type reportBatcher struct {
	mu      sync.Mutex
	pending []store.TaskStatusUpdate
	waiters []chan reportResult
	running bool
}

type reportResult struct {
	index uint64
	err   error
}

// reportApplyTimeout bounds one group commit; it does not follow any one
// caller's context, since the batch carries other nodes' reports too.
const reportApplyTimeout = 30 * time.Second

// applyReports queues updates and returns the result of the batch that
// carried them.
func (s *Server) applyReports(ctx context.Context, updates []store.TaskStatusUpdate) (uint64, error) {
	ch := make(chan reportResult, 1)
	b := &s.reports
	b.mu.Lock()
	b.pending = append(b.pending, updates...)
	b.waiters = append(b.waiters, ch)
	start := !b.running
	b.running = true
	b.mu.Unlock()
	if start {
		go s.flushReports()
	}
	select {
	case r := <-ch:
		return r.index, r.err
	case <-ctx.Done():
		// The batch still goes out; only this caller stops waiting.
		return 0, ctx.Err()
	}
}

func (s *Server) flushReports() {
	b := &s.reports
	for {
		b.mu.Lock()
		ups, ws := b.pending, b.waiters
		b.pending, b.waiters = nil, nil
		if len(ws) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), reportApplyTimeout)
		idx, err := s.apply(ctx, &store.Batch{TaskStatuses: ups})
		cancel()
		for _, w := range ws {
			w <- reportResult{idx, err}
		}
	}
}
