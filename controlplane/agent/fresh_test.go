package agent

import (
	"slices"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/testutil"
)

// A restarted agent whose cache is as new as the store still asks for a
// full answer first: the cache key for its secrets only comes in one, and a
// query at its current index that runs out answers with the index alone.
func TestFirstQueryAfterRestartAsksForEverything(t *testing.T) {
	dir := t.TempDir()
	f := newFakeManager(t, assignments(7, nil, "t1"))
	f.assign.Managers = []string{f.addr()}
	r := start(t, dir, newClient(t, f, f.addr()), &recorder{}, nil)
	testutil.Eventually(t, "the first agent caught up", 15*time.Second, func() bool {
		got := r.a.Applied()
		return got != nil && got.Index == 7
	})
	r.stop()

	f.mu.Lock()
	f.queries = nil
	f.mu.Unlock()
	r2 := start(t, dir, newClient(t, f, f.addr()), &recorder{}, nil)
	testutil.Eventually(t, "the restarted agent queried twice", 15*time.Second, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.queries) >= 2
	})
	r2.stop()
	f.mu.Lock()
	qs := slices.Clone(f.queries)
	f.mu.Unlock()
	if qs[0] != 0 || qs[1] != 7 {
		t.Fatalf("queries after the restart asked from %v, want 0 first (a full answer), then the index it has (7)", qs)
	}
}
