package raftnode

// FirstLogIndex exposes the first index still in the log, so tests can prove
// a follower had to catch up by snapshot.
func (n *Node) FirstLogIndex() (uint64, error) { return n.bolt.FirstIndex() }
