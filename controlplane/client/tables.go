package client

import (
	"context"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// tablesPoll is how often WaitTables asks; acks usually arrive within tens
// of milliseconds, so a coarser poll would dominate the figure it reports.
const tablesPoll = 10 * time.Millisecond

// WaitTables waits until every ready node has applied a service table at
// least as new as index — a change written at index is then in effect for
// new connections everywhere — or ctx ends. It returns the last answer and,
// when ctx ended first, ctx's error; the answer's Waiting(index) names the
// nodes still behind.
func (c *Client) WaitTables(ctx context.Context, index uint64) (*api.Tables, error) {
	for {
		tb, err := c.Tables(ctx)
		if err == nil && len(tb.Waiting(index)) == 0 {
			return tb, nil
		}
		t := time.NewTimer(tablesPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			if tb == nil {
				tb = &api.Tables{}
			}
			return tb, ctx.Err()
		case <-t.C:
		}
	}
}
