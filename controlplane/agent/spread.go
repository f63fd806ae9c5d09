package agent

import (
	"hash/fnv"
	"slices"
)

// preferred orders the managers for this node: each node ranks them by a
// hash of its ID and the manager's address (rendezvous hashing), so the
// nodes' watches and heartbeats spread evenly over the managers instead of
// all landing on the first one listed, and a node keeps its manager
// whatever order the list comes in. When a manager fails, the client tries
// the next in this ranking, which differs from node to node: the failed
// manager's nodes spread over the others too, and adding a manager moves
// only the nodes that now rank it first.
func preferred(nodeID string, addrs []string) []string {
	out := slices.Clone(addrs)
	score := func(addr string) uint64 {
		h := fnv.New64a()
		_, _ = h.Write([]byte(nodeID))
		_, _ = h.Write([]byte{0})
		_, _ = h.Write([]byte(addr))
		return mix(h.Sum64())
	}
	slices.SortStableFunc(out, func(a, b string) int {
		sa, sb := score(a), score(b)
		switch {
		case sa > sb:
			return -1
		case sa < sb:
			return 1
		}
		return 0
	})
	return out
}

// mix is a 64-bit finaliser (splitmix64's): FNV alone leaves addresses
// that differ in their last byte with close scores, which would rank the
// same manager first for most nodes.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
