package raftnode

import (
	"testing"
	"time"

	metrics "github.com/hashicorp/go-metrics"
)

func TestLeaderTrackerCountsChangesNotTheFirstLeader(t *testing.T) {
	for _, c := range []struct {
		name    string
		seen    []string
		changes uint64
	}{
		{"the first leader learnt is no election seen", []string{"m1"}, 0},
		{"repeats of the same leader", []string{"m1", "m1", "m1"}, 0},
		{"a leaderless gap then the same leader is no change", []string{"m1", "", "m1"}, 0},
		{"a new leader is one", []string{"m1", "", "m2"}, 1},
		{"three changes", []string{"m1", "m2", "", "m3", "m1"}, 3},
		{"nothing but no leader", []string{"", ""}, 0},
	} {
		var lt leaderTracker
		for _, l := range c.seen {
			lt.observe(l)
		}
		if lt.changes != c.changes {
			t.Errorf("%s: %v → %d changes, want %d", c.name, c.seen, lt.changes, c.changes)
		}
	}
}

func TestContactSinkKeepsOnlySuccessfulReplicationRPCs(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	s := &contactSink{last: map[string]time.Time{}, now: func() time.Time { return now }}
	peer := []metrics.Label{{Name: "peer_id", Value: "m2"}}
	for _, c := range []struct {
		key  []string
		want bool
	}{
		{[]string{"warren", "raft", "replication", "heartbeat"}, true},
		{[]string{"warren", "raft", "replication", "appendEntries", "rpc"}, true},
		// The legacy key carries the peer in the name, not a label.
		{[]string{"warren", "raft", "replication", "heartbeat", "m2"}, false},
		{[]string{"warren", "raft", "replication", "installSnapshot"}, false},
		{[]string{"warren", "raft", "rpc", "appendEntries"}, false},
		{[]string{"heartbeat"}, false},
	} {
		if got := isContact(c.key); got != c.want {
			t.Errorf("isContact(%v) = %v, want %v", c.key, got, c.want)
		}
	}
	s.AddSampleWithLabels([]string{"warren", "raft", "replication", "installSnapshot"}, 1, peer)
	if _, ok := s.lastContact("m2"); ok {
		t.Fatal("a snapshot install counted as contact")
	}
	s.AddSampleWithLabels([]string{"warren", "raft", "replication", "heartbeat"}, 1, []metrics.Label{{Name: "other", Value: "x"}})
	if len(s.last) != 0 {
		t.Fatalf("a sample without peer_id recorded contact: %v", s.last)
	}
	s.AddSampleWithLabels([]string{"warren", "raft", "replication", "heartbeat"}, 1, peer)
	if at, ok := s.lastContact("m2"); !ok || !at.Equal(now) {
		t.Fatalf("lastContact(m2) = %v %v, want %v", at, ok, now)
	}
}

func TestReachableWithinOneHeartbeatTimeout(t *testing.T) {
	hb := 500 * time.Millisecond
	for _, c := range []struct {
		since time.Duration
		want  bool
	}{
		{-1, false}, // never contacted while this manager led
		{0, true},
		{hb, true},
		{hb + time.Millisecond, false},
	} {
		if got := reachable(c.since, hb); got != c.want {
			t.Errorf("reachable(%v, %v) = %v, want %v", c.since, hb, got, c.want)
		}
	}
}
