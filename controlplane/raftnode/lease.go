package raftnode

import "time"

// leaseDriftDivisor sets the share of the lease kept back for clocks that
// run at different rates: a tenth, far more than the few hundred parts per
// million a quartz oscillator, even one being slewed by NTP, drifts.
const leaseDriftDivisor = 10

// ReadLease is how long after a leadership check started (VerifyLeader)
// this manager may still serve reads from its own store as linearizable,
// without another round to a quorum. See readLease for the argument.
func (n *Node) ReadLease() time.Duration {
	return readLease(n.cfg.HeartbeatTimeout, n.cfg.ElectionTimeout, n.cfg.LeaderLeaseTimeout)
}

// readLease derives the read lease from raft's timeouts.
//
// A VerifyLeader that returns nil means a quorum of voters answered an
// AppendEntries from this leader, each at some instant after the check
// began or shortly before (hashicorp/raft counts the first answer that
// arrives after the check was queued). A follower that answered the leader
// refuses to vote for anyone else while it still knows that leader, and it
// forgets the leader only after a heartbeat timeout without contact; a new
// leader needs the votes of a quorum, and every quorum shares a voter with
// the one that answered. So no other leader can commit anything before
// about HeartbeatTimeout after the check began, and the local store, which
// the check's Barrier brought up to date for this term, stays complete for
// that long.
//
// The lease takes the smallest of raft's timeouts, and no more than the
// leader lease after which hashicorp/raft makes the leader itself step down
// without quorum contact. That leaves at least the difference to
// HeartbeatTimeout (half of it with Warren's defaults) for an answer to a
// request sent just before the check began. A tenth more is kept back for
// clock drift: each manager measures the intervals with its own monotonic
// clock.
//
// What the argument assumes: a voter that restarts forgets the leader it
// knew, and could vote at once; a manager takes longer than the lease to
// restart and rejoin. And nobody moves leadership on purpose
// (LeadershipTransfer lets followers vote while they know a leader);
// Warren never calls it.
func readLease(heartbeat, election, leaderLease time.Duration) time.Duration {
	d := min(heartbeat, election, leaderLease)
	if d <= 0 {
		return 0
	}
	return d - d/leaseDriftDivisor
}
