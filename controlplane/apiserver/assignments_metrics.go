package apiserver

import "github.com/prometheus/client_golang/prometheus"

// What the assignments watch sends: whether agents get deltas (a rising
// share of full answers means agents fall further behind than the
// remembered tables, or run a version without deltas), and the bytes.
var (
	assignmentAnswers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "warren_assignments_answers_total",
		Help: "Assignments answers this manager sent, by kind: full (the whole service table), delta (what changed since the table the agent holds), unchanged (a wait that ran out).",
	}, []string{"kind"})
	assignmentBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "warren_assignments_answer_bytes_total",
		Help: "Bytes of the assignments answers this manager sent (JSON, before TLS), by kind (full, delta).",
	}, []string{"kind"})
)

func init() {
	for _, k := range []string{"full", "delta", "unchanged"} {
		assignmentAnswers.WithLabelValues(k)
		if k != "unchanged" {
			assignmentBytes.WithLabelValues(k)
		}
	}
}

func countAnswer(kind string, bytes int) {
	assignmentAnswers.WithLabelValues(kind).Inc()
	if bytes > 0 {
		assignmentBytes.WithLabelValues(kind).Add(float64(bytes))
	}
}
