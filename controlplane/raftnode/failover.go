package raftnode

import (
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// A follower normally learns that its leader is gone only when the
// heartbeat timeout runs out, and the other follower still has the leader
// then and rejects its vote, so a killed leader costs two to three
// timeouts. When the leader's process has died but its host is up, the
// follower can know it much sooner: the kernel closed the leader's raft
// connections to it and refuses new ones on the leader's port. Such a
// follower shortens its own heartbeat and election timeouts to the leader
// lease, which makes raft campaign at once, and restores the configured
// timeouts when a new leader is known.
//
// The lease is the floor for two reasons. A leader that has not heard from
// a quorum for that long has stepped down by itself, so no follower
// campaigns while a leader that merely lost its connections could still be
// serving; and raft refuses a heartbeat timeout shorter than the lease.
// A partition or a slow leader produces timeouts, not refusals, and goes
// through the configured timeouts exactly as before.

// leaderFacts is what a follower observed about its leader at one moment.
type leaderFacts struct {
	// Following: this manager is a follower that knows a leader other than
	// itself.
	Following bool
	// Inbound is how many raft connections that may come from the leader
	// are still open here.
	Inbound int
	// Refused: the last dial to the leader's raft address was refused.
	Refused bool
	// SinceContact is the time since the leader was last heard from.
	SinceContact time.Duration
}

// shouldProbe reports whether it is worth dialing the leader to see
// whether its port still has a listener: only when nothing from the leader
// is connected any more, since a live leader keeps its connections open.
func shouldProbe(f leaderFacts) bool {
	return f.Following && f.Inbound == 0
}

// leaderDead reports whether the follower should campaign now rather than
// wait out its heartbeat timeout: every connection from the leader is
// closed, its port refuses new ones, and it has been silent for at least
// the leader lease.
func leaderDead(f leaderFacts, lease time.Duration) bool {
	return f.Following && f.Inbound == 0 && f.Refused && f.SinceContact >= lease
}

const (
	// watchEvery is how often the watcher looks at its leader's
	// connections; it only dials when they are all closed.
	watchEvery = 20 * time.Millisecond
	// probeBackoff spaces dials to a leader whose port accepted the last
	// one, so that a live leader which happens to have no connection here
	// is not dialed (and TLS-handshaken) every tick.
	probeBackoff = time.Second
)

// watchLeader runs the early campaign described above. It does nothing when
// the node's stream layer is not this package's (it cannot see the
// connections).
func (n *Node) watchLeader(s *streamLayer) {
	defer n.wg.Done()
	tick := time.NewTicker(watchEvery)
	defer tick.Stop()
	var (
		nextProbe time.Time
		shortened bool
		since     time.Time // when the timeouts were shortened
	)
	lease := n.cfg.LeaderLeaseTimeout
	for {
		select {
		case <-tick.C:
		case <-n.done:
			return
		}
		now := time.Now()
		state := n.raft.State()
		addr, id := n.raft.LeaderWithID()
		if shortened {
			// Restore once someone leads again: this manager, or a leader
			// it heard from since the change (the dead one may also have
			// come back and won). Restore too after long enough that the
			// cluster is plainly not electing anyone soon (no quorum): it
			// then waits with the configured timeouts, as without this.
			// Until then a live leader's heartbeats (a tenth of its
			// configured timeout apart) still come well within the lease.
			heard := id != "" && n.raft.LastContact().After(since)
			if state == raft.Leader || heard || state == raft.Shutdown || now.Sub(since) > 10*n.cfg.ElectionTimeout {
				n.setTimeouts(n.cfg.HeartbeatTimeout, n.cfg.ElectionTimeout)
				shortened = false
			}
			continue
		}
		f := leaderFacts{Following: state == raft.Follower && id != "" && string(id) != n.cfg.NodeID}
		if !f.Following {
			continue
		}
		f.Inbound = s.inboundFrom(string(id))
		if !shouldProbe(f) || now.Before(nextProbe) {
			continue
		}
		if f.Refused = s.dialRefused(string(addr), lease); !f.Refused {
			nextProbe = now.Add(probeBackoff)
			continue
		}
		f.SinceContact = time.Since(n.raft.LastContact())
		if !leaderDead(f, lease) {
			continue
		}
		n.cfg.Logger.Info("raft leader's port refuses connections and all its connections are closed: campaigning now",
			zap.String("leader_id", string(id)), zap.String("leader_addr", string(addr)), zap.Duration("since_contact", f.SinceContact))
		// Counted first, so that whoever sees the election it starts also
		// sees the count.
		n.earlyCampaigns.Add(1)
		if !n.setTimeouts(lease, lease) {
			n.earlyCampaigns.Add(^uint64(0))
			continue
		}
		shortened, since = true, now
	}
}

// setTimeouts changes raft's heartbeat and election timeouts, keeping its
// other reloadable settings. Lowering the heartbeat timeout makes a
// follower check it at once. Only watchLeader calls it, so the read and the
// write cannot interleave with another change.
func (n *Node) setTimeouts(heartbeat, election time.Duration) bool {
	rc := n.raft.ReloadableConfig()
	rc.HeartbeatTimeout, rc.ElectionTimeout = heartbeat, election
	if err := n.raft.ReloadConfig(rc); err != nil {
		n.cfg.Logger.Warn("change raft timeouts", zap.Duration("heartbeat", heartbeat), zap.Duration("election", election), zap.Error(err))
		return false
	}
	return true
}

// EarlyCampaigns counts the times this manager campaigned before its
// heartbeat timeout because its leader's process was seen gone.
func (n *Node) EarlyCampaigns() uint64 { return n.earlyCampaigns.Load() }
