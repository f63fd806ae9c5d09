package apiserver

import (
	"context"
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
type reportBatcher = groupCommit[reportReq]

// reportReq is one caller's reports.
type reportReq struct {
	updates []store.TaskStatusUpdate
	done    chan commitResult
}

// reportApplyTimeout bounds one group commit; it does not follow any one
// caller's context, since the batch carries other nodes' reports too.
const reportApplyTimeout = 30 * time.Second

// applyReports queues updates and returns the result of the batch that
// carried them.
func (s *Server) applyReports(ctx context.Context, updates []store.TaskStatusUpdate) (uint64, error) {
	q := reportReq{updates: updates, done: make(chan commitResult, 1)}
	s.reports.add(q, s.commitReports)
	return awaitCommit(ctx, q.done)
}

// commitReports applies the reports of qs as one batch.
func (s *Server) commitReports(qs []reportReq) {
	var ups []store.TaskStatusUpdate
	for _, q := range qs {
		ups = append(ups, q.updates...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), reportApplyTimeout)
	idx, err := s.apply(ctx, &store.Batch{TaskStatuses: ups})
	cancel()
	for _, q := range qs {
		q.done <- commitResult{idx, err}
	}
}
