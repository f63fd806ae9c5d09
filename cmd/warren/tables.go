package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
)

// tablesWait bounds how long the CLI waits for every node's service table;
// it is the managers' drain timeout, past which they stop waiting too.
const tablesWait = 10 * time.Second

// reportTables says when the change written at index is in effect for new
// connections on every ready node (the nodes' acknowledged service tables).
func reportTables(g *globals, c *client.Client, what string, index uint64, since time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), tablesWait)
	defer cancel()
	tb, err := c.WaitTables(ctx, index)
	if err != nil {
		fmt.Fprintf(g.stderr, "%s: not yet in effect on %s after %s\n", what, strings.Join(tb.Waiting(index), ", "), tablesWait)
		return
	}
	ready := 0
	for _, n := range tb.Nodes {
		if n.State == api.NodeReady {
			ready++
		}
	}
	fmt.Fprintf(g.stderr, "%s: in effect on every node (%d) after %s\n", what, ready, time.Since(since).Round(time.Millisecond))
}
