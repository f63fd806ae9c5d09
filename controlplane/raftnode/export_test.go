package raftnode

import "time"

// FirstLogIndex exposes the first index still in the log, so tests can prove
// a follower had to catch up by snapshot.
func (n *Node) FirstLogIndex() (uint64, error) { return n.bolt.FirstIndex() }

// RaftTimeouts exposes raft's current heartbeat and election timeouts, so
// tests can see the early campaign restore them.
func (n *Node) RaftTimeouts() (heartbeat, election time.Duration) {
	rc := n.raft.ReloadableConfig()
	return rc.HeartbeatTimeout, rc.ElectionTimeout
}
