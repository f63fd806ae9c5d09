package agent

import (
	"fmt"
	"slices"
	"testing"
)

// TestPreferredSpreadsNodes: 3,000 node IDs over three managers each get
// close to a third as their first choice; a node's ranking does not depend
// on the order of the list; and when one manager is gone, its nodes fail
// over to both others, not all to one of them.
func TestPreferredSpreadsNodes(t *testing.T) {
	managers := []string{"10.0.0.1:2377", "10.0.0.2:2377", "10.0.0.3:2377"}
	first := map[string]int{}
	failover := map[string]int{}
	for i := range 3000 {
		id := fmt.Sprintf("node-%04d-%x", i, i*7919)
		got := preferred(id, managers)
		if !slices.Equal(slices.Sorted(slices.Values(got)), managers) {
			t.Fatalf("preferred(%s) = %v, not a permutation of %v", id, got, managers)
		}
		reversed := slices.Clone(managers)
		slices.Reverse(reversed)
		if again := preferred(id, reversed); !slices.Equal(again, got) {
			t.Fatalf("preferred(%s) depends on the list's order: %v then %v", id, got, again)
		}
		first[got[0]]++
		if got[0] == managers[0] {
			failover[got[1]]++
		}
	}
	for _, m := range managers {
		if n := first[m]; n < 850 || n > 1150 {
			t.Errorf("%s is the first choice of %d of 3000 nodes, want about 1000 (%v)", m, n, first)
		}
	}
	for _, m := range managers[1:] {
		if n := failover[m]; n < first[managers[0]]/3 {
			t.Errorf("of the %d nodes preferring %s, %d fail over to %s, want about half (%v)", first[managers[0]], managers[0], n, m, failover)
		}
	}
	// Removing a manager moves only the nodes that preferred it.
	moved := 0
	for i := range 3000 {
		id := fmt.Sprintf("node-%04d-%x", i, i*7919)
		before := preferred(id, managers)[0]
		after := preferred(id, managers[:2])[0]
		if before != after && before != managers[2] {
			moved++
		}
	}
	if moved != 0 {
		t.Errorf("%d nodes changed manager though theirs was not removed", moved)
	}
}
