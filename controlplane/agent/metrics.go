package agent

import (
	"github.com/prometheus/client_golang/prometheus"
)

// collector exposes the node's disconnect figures, read at scrape time.
type collector struct {
	a            *Agent
	disconnected *prometheus.Desc
	reconciled   *prometheus.Desc
}

// NewCollector returns the Prometheus collector of the agent's contact with
// the managers: warren_node_disconnected_seconds (the current cut and the
// last one) and warren_node_reconciliations_total (tasks of every sync
// after a cut, by outcome).
func NewCollector(a *Agent) prometheus.Collector {
	return &collector{
		a: a,
		disconnected: prometheus.NewDesc("warren_node_disconnected_seconds",
			"How long this node has been cut off from every manager (period=current, 0 while in touch) and how long its previous cut lasted (period=last).",
			[]string{"period"}, nil),
		reconciled: prometheus.NewDesc("warren_node_reconciliations_total",
			"Tasks of this node reconciled with the managers' state after a cut, by outcome (kept, stopped, updated).",
			[]string{"outcome"}, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.disconnected
	ch <- c.reconciled
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.a.Disconnect()
	ch <- prometheus.MustNewConstMetric(c.disconnected, prometheus.GaugeValue, st.Current.Seconds(), "current")
	ch <- prometheus.MustNewConstMetric(c.disconnected, prometheus.GaugeValue, st.Last.Seconds(), "last")
	for _, o := range []string{OutcomeKept, OutcomeStopped, OutcomeUpdated} {
		ch <- prometheus.MustNewConstMetric(c.reconciled, prometheus.CounterValue, float64(st.Outcomes[o]), o)
	}
}
