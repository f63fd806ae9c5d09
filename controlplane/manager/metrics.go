package manager

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/apiserver"
)

// collector exposes cluster and raft figures, read from the local store and
// raft at scrape time (nothing is kept in counters that could drift).
type collector struct {
	m *Manager

	nodes, services, tasks                    *prometheus.Desc
	isLeader, term, commitIndex, appliedIndex *prometheus.Desc
	lastContact, storeIndex                   *prometheus.Desc
	quorum                                    quorumDescs
}

// NewCollector returns the manager's Prometheus collector.
func NewCollector(m *Manager) prometheus.Collector {
	return &collector{
		m:            m,
		nodes:        prometheus.NewDesc("warren_cluster_nodes", "Nodes by state and availability.", []string{"state", "availability"}, nil),
		services:     prometheus.NewDesc("warren_cluster_services", "Services by mode.", []string{"mode"}, nil),
		tasks:        prometheus.NewDesc("warren_cluster_tasks", "Tasks by current state (desired running or not yet stopped).", []string{"state"}, nil),
		isLeader:     prometheus.NewDesc("warren_raft_is_leader", "1 if this manager is the raft leader.", nil, nil),
		term:         prometheus.NewDesc("warren_raft_term", "Current raft term.", nil, nil),
		commitIndex:  prometheus.NewDesc("warren_raft_commit_index", "Raft commit index.", nil, nil),
		appliedIndex: prometheus.NewDesc("warren_raft_applied_index", "Last raft index applied to the state store.", nil, nil),
		lastContact:  prometheus.NewDesc("warren_raft_last_contact_seconds", "Time since this follower last heard from the leader (0 on the leader, -1 never).", nil, nil),
		storeIndex:   prometheus.NewDesc("warren_store_index", "Raft index of the local state store.", nil, nil),
		quorum:       newQuorumDescs(),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.nodes, c.services, c.tasks, c.isLeader, c.term, c.commitIndex, c.appliedIndex, c.lastContact, c.storeIndex} {
		ch <- d
	}
	c.quorum.describe(ch)
	for _, m := range apiserver.Metrics() {
		m.Describe(ch)
	}
	c.m.acks.propagation().Describe(ch)
	planMetrics.describe(ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.m.acks.propagation().Collect(ch)
	planMetrics.collect(ch)
	for _, m := range apiserver.Metrics() {
		m.Collect(ch)
	}
	v := c.m.st.View()
	type na struct{ s, a string }
	nodes := map[na]int{}
	for _, s := range []api.NodeState{api.NodeUnknown, api.NodeReady, api.NodeDown} {
		for _, a := range []api.Availability{api.AvailabilityActive, api.AvailabilityPause, api.AvailabilityDrain} {
			nodes[na{string(s), string(a)}] = 0
		}
	}
	for _, n := range v.Nodes() {
		nodes[na{string(n.Status.State), string(n.Spec.Availability)}]++
	}
	for k, n := range nodes {
		ch <- prometheus.MustNewConstMetric(c.nodes, prometheus.GaugeValue, float64(n), k.s, k.a)
	}
	modes := map[string]int{string(api.ModeReplicated): 0, string(api.ModeGlobal): 0}
	for _, s := range v.Services() {
		modes[string(s.Spec.Mode)]++
	}
	for m, n := range modes {
		ch <- prometheus.MustNewConstMetric(c.services, prometheus.GaugeValue, float64(n), m)
	}
	states := map[string]int{}
	for _, s := range []api.TaskState{api.TaskPending, api.TaskAssigned, api.TaskPreparing, api.TaskStarting, api.TaskRunning, api.TaskUnknown, api.TaskComplete, api.TaskShutdown, api.TaskFailed, api.TaskRejected, api.TaskOrphaned} {
		states[string(s)] = 0
	}
	for st, n := range v.TaskStates() {
		states[string(st)] += n
	}
	for s, n := range states {
		ch <- prometheus.MustNewConstMetric(c.tasks, prometheus.GaugeValue, float64(n), s)
	}
	ch <- prometheus.MustNewConstMetric(c.storeIndex, prometheus.GaugeValue, float64(v.Index()))
	if c.m.raft == nil {
		return
	}
	st := c.m.raft.Stats()
	leader := 0.0
	if c.m.raft.IsLeader() {
		leader = 1
	}
	ch <- prometheus.MustNewConstMetric(c.isLeader, prometheus.GaugeValue, leader)
	ch <- prometheus.MustNewConstMetric(c.term, prometheus.GaugeValue, float64(st.Term))
	ch <- prometheus.MustNewConstMetric(c.commitIndex, prometheus.GaugeValue, float64(st.CommitIndex))
	ch <- prometheus.MustNewConstMetric(c.appliedIndex, prometheus.GaugeValue, float64(st.AppliedIndex))
	lc := st.LastContact.Seconds()
	if st.LastContact < 0 {
		lc = -1
	}
	ch <- prometheus.MustNewConstMetric(c.lastContact, prometheus.GaugeValue, lc)
	c.quorum.collect(ch, c.m.raft, st)
}
