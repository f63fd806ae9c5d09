package manager

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenhq/warren/controlplane/raftnode"
)

// quorumDescs are the raft health figures PRD story 5.1 asks for: whether
// the quorum holds (voters the leader reaches), how far behind each
// follower is, how often leadership changed, and the replicated volume.
type quorumDescs struct {
	voters, reachable, lag, elections, early, entries, bytes *prometheus.Desc
}

func newQuorumDescs() quorumDescs {
	return quorumDescs{
		voters:    prometheus.NewDesc("warren_raft_voters", "Voting managers in the raft configuration (reported by the leader).", nil, nil),
		reachable: prometheus.NewDesc("warren_raft_voters_reachable", "Voting managers the leader reached within one heartbeat timeout, itself included (reported by the leader); below a majority the cluster cannot commit.", nil, nil),
		lag:       prometheus.NewDesc("warren_raft_replication_lag_seconds", "Time since the leader's last successful AppendEntries or heartbeat to the follower (-1: none since this manager became leader).", []string{"follower", "voter"}, nil),
		elections: prometheus.NewDesc("warren_raft_elections_total", "Leader changes this manager saw since it started (the first leader it learns of is not counted).", nil, nil),
		early:     prometheus.NewDesc("warren_raft_early_campaigns_total", "Elections this manager started before its heartbeat timeout because its leader's process was seen gone (its raft port refusing, its connections closed).", nil, nil),
		entries:   prometheus.NewDesc("warren_raft_applied_entries_total", "Raft commands applied to this manager's state store since it started.", nil, nil),
		bytes:     prometheus.NewDesc("warren_raft_applied_bytes_total", "Bytes of raft commands applied to this manager's state store since it started.", nil, nil),
	}
}

func (q quorumDescs) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{q.voters, q.reachable, q.lag, q.elections, q.early, q.entries, q.bytes} {
		ch <- d
	}
}

func (q quorumDescs) collect(ch chan<- prometheus.Metric, rn *raftnode.Node, st raftnode.Stats) {
	ch <- prometheus.MustNewConstMetric(q.elections, prometheus.CounterValue, float64(st.Elections))
	ch <- prometheus.MustNewConstMetric(q.early, prometheus.CounterValue, float64(rn.EarlyCampaigns()))
	ch <- prometheus.MustNewConstMetric(q.entries, prometheus.CounterValue, float64(st.AppliedEntries))
	ch <- prometheus.MustNewConstMetric(q.bytes, prometheus.CounterValue, float64(st.AppliedBytes))
	voters, reachable, followers, ok := rn.QuorumHealth()
	if !ok {
		return // only the leader knows; followers would report a stale view
	}
	ch <- prometheus.MustNewConstMetric(q.voters, prometheus.GaugeValue, float64(voters))
	ch <- prometheus.MustNewConstMetric(q.reachable, prometheus.GaugeValue, float64(reachable))
	for _, f := range followers {
		voter := "false"
		if f.Voter {
			voter = "true"
		}
		lag := f.Since.Seconds()
		if f.Since < 0 {
			lag = -1
		}
		ch <- prometheus.MustNewConstMetric(q.lag, prometheus.GaugeValue, lag, f.ID, voter)
	}
}
