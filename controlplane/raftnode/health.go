package raftnode

import (
	"sync"
	"sync/atomic"
	"time"

	metrics "github.com/hashicorp/go-metrics"
	"github.com/hashicorp/raft"

	"github.com/warrenhq/warren/controlplane/store"
)

// Quorum health as the leader sees it. hashicorp/raft keeps each follower's
// replication state private; the one thing it publishes per follower is a
// go-metrics sample after every successful AppendEntries and heartbeat
// (keyed by peer_id). contactSink turns those samples into "last
// successful contact" times, from which the leader derives which voters are
// reachable and how far behind, in time, each follower is.

// contacts is process-wide because go-metrics has one global sink; peer
// IDs are node IDs, unique across the managers of a process.
var (
	contacts     = &contactSink{last: map[string]time.Time{}, now: time.Now}
	contactsOnce sync.Once
)

func installContactSink() {
	contactsOnce.Do(func() {
		conf := metrics.DefaultConfig("warren")
		conf.EnableHostname, conf.EnableRuntimeMetrics = false, false
		_, _ = metrics.NewGlobal(conf, contacts)
	})
}

// contactSink is a go-metrics sink that keeps only the time of the last
// successful replication RPC to each peer.
type contactSink struct {
	mu   sync.Mutex
	last map[string]time.Time
	now  func() time.Time
}

// isContact reports whether a sample key is one raft emits after a
// successful RPC to a follower: …replication.appendEntries.rpc or
// …replication.heartbeat (labelled peer_id).
func isContact(key []string) bool {
	n := len(key)
	switch {
	case n >= 2 && key[n-2] == "replication" && key[n-1] == "heartbeat":
		return true
	case n >= 3 && key[n-3] == "replication" && key[n-2] == "appendEntries" && key[n-1] == "rpc":
		return true
	}
	return false
}

func (s *contactSink) AddSampleWithLabels(key []string, _ float32, labels []metrics.Label) {
	if !isContact(key) {
		return
	}
	for _, l := range labels {
		if l.Name == "peer_id" {
			s.mu.Lock()
			s.last[l.Value] = s.now()
			s.mu.Unlock()
			return
		}
	}
}

func (s *contactSink) lastContact(peer string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.last[peer]
	return t, ok
}

func (*contactSink) SetGauge([]string, float32)                               {}
func (*contactSink) SetGaugeWithLabels([]string, float32, []metrics.Label)    {}
func (*contactSink) EmitKey([]string, float32)                                {}
func (*contactSink) IncrCounter([]string, float32)                            {}
func (*contactSink) IncrCounterWithLabels([]string, float32, []metrics.Label) {}
func (*contactSink) AddSample([]string, float32)                              {}

// FollowerLag is one follower as the leader sees it.
type FollowerLag struct {
	ID    string
	Voter bool
	// Since is the time since the leader's last successful AppendEntries
	// or heartbeat to it; -1 when there was none since this manager led.
	Since time.Duration
}

// reachable reports whether a follower answered recently enough to count
// towards quorum: raft heartbeats every HeartbeatTimeout/10, so a voter
// silent for a whole HeartbeatTimeout is as good as gone.
func reachable(since, heartbeatTimeout time.Duration) bool {
	return since >= 0 && since <= heartbeatTimeout
}

// QuorumHealth counts the voters the leader can reach (itself included) and
// lists every follower's contact lag. On a follower it returns ok false.
func (n *Node) QuorumHealth() (voters, reachableVoters int, followers []FollowerLag, ok bool) {
	if n.raft.State() != raft.Leader {
		return 0, 0, nil, false
	}
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return 0, 0, nil, false
	}
	now := contacts.now()
	self := raft.ServerID(n.cfg.NodeID)
	for _, s := range f.Configuration().Servers {
		voter := s.Suffrage == raft.Voter
		if voter {
			voters++
		}
		if s.ID == self {
			if voter {
				reachableVoters++
			}
			continue
		}
		lag := FollowerLag{ID: string(s.ID), Voter: voter, Since: -1}
		// A contact from before this term's leadership says nothing about now.
		if t, ok := contacts.lastContact(string(s.ID)); ok && !t.Before(n.ledSince()) {
			lag.Since = now.Sub(t)
		}
		if voter && reachable(lag.Since, n.cfg.HeartbeatTimeout) {
			reachableVoters++
		}
		followers = append(followers, lag)
	}
	return voters, reachableVoters, followers, true
}

func (n *Node) ledSince() time.Time { return time.Unix(0, n.leaderSince.Load()) }

// leaderTracker counts leader changes: a new non-empty leader after another
// one was known. The first leader a manager learns of is not an election it
// saw happen (it may have been elected long before this manager started).
type leaderTracker struct {
	last    string
	changes uint64
}

func (t *leaderTracker) observe(leader string) {
	if leader == "" || leader == t.last {
		return
	}
	if t.last != "" {
		t.changes++
	}
	t.last = leader
}

// countingFSM counts what the FSM applies, for raft bytes/s.
type countingFSM struct {
	*store.FSM
	entries, bytes atomic.Uint64
}

func (f *countingFSM) Apply(l *raft.Log) interface{} {
	if l.Type == raft.LogCommand {
		f.entries.Add(1)
		f.bytes.Add(uint64(len(l.Data)))
	}
	return f.FSM.Apply(l)
}

// observeLeaders counts leader changes from raft's observations until
// Shutdown. The observer never blocks raft: a full channel drops the
// observation, and the next one still names the current leader.
func (n *Node) observeLeaders() {
	ch := make(chan raft.Observation, 16)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	n.raft.RegisterObserver(obs)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer n.raft.DeregisterObserver(obs)
		for {
			select {
			case o := <-ch:
				lo := o.Data.(raft.LeaderObservation)
				n.leadersMu.Lock()
				n.leaders.observe(string(lo.LeaderID))
				n.leadersMu.Unlock()
			case <-n.done:
				return
			}
		}
	}()
}
