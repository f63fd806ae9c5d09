//go:build linux

package sim

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestQuantile(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		out := make([]time.Duration, len(xs))
		for i, x := range xs {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // reversed: Quantile must sort
	}
	for _, c := range []struct {
		name string
		xs   []time.Duration
		q    float64
		want time.Duration
	}{
		{"empty", nil, .5, 0},
		{"one sample is every quantile", ms(7), .99, 7 * time.Millisecond},
		{"median of odd count", ms(3, 1, 2), .5, 2 * time.Millisecond},
		{"p95 of 1..100 is 95", ms(hundred...), .95, 95 * time.Millisecond},
		{"p99 of 1..100 is 99", ms(hundred...), .99, 99 * time.Millisecond},
		{"p100 is the max", ms(hundred...), 1, 100 * time.Millisecond},
		{"p0 is the min", ms(hundred...), 0, time.Millisecond},
	} {
		if got := Quantile(c.xs, c.q); got != c.want {
			t.Errorf("%s: Quantile(q=%v) = %v, want %v", c.name, c.q, got, c.want)
		}
	}
}

func TestLatenciesCountErrorsApart(t *testing.T) {
	var l Latencies
	l.Add(10*time.Millisecond, nil)
	l.Add(time.Hour, errTest)
	l.Add(20*time.Millisecond, nil)
	p50, _, p99, n, errs := l.Summary()
	if n != 2 || errs != 1 || p50 != 10*time.Millisecond || p99 != 20*time.Millisecond {
		t.Fatalf("Summary = p50 %v p99 %v n %d errs %d; want 10ms 20ms 2 1 (a failed call is not a latency)", p50, p99, n, errs)
	}
}

type testErr struct{}

func (testErr) Error() string { return "test" }

var errTest = testErr{}

func TestParseMetricsSumsLabelSets(t *testing.T) {
	in := `# HELP warren_cluster_tasks Tasks.
# TYPE warren_cluster_tasks gauge
warren_cluster_tasks{state="running"} 40
warren_cluster_tasks{state="pending"} 2
warren_raft_is_leader 1
`
	got, err := parseMetrics(bufio.NewScanner(strings.NewReader(in)))
	if err != nil {
		t.Fatal(err)
	}
	for series, want := range map[string]float64{`warren_cluster_tasks{state="running"}`: 40, "warren_cluster_tasks": 42, "warren_raft_is_leader": 1} {
		if got[series] != want {
			t.Errorf("%s = %v, want %v", series, got[series], want)
		}
	}
}

func TestTableMarksMissedGoals(t *testing.T) {
	tb := Table{Title: "t"}
	tb.Goal("api p95", "≤ 50 ms", false, "%s", "80 ms")
	tb.Goal("rss", "≤ 300 MiB", true, "%s", "120 MiB")
	tb.Add("join rate", "%d/s", 40)
	if m := tb.Missed(); len(m) != 1 || m[0] != "api p95" {
		t.Fatalf("Missed = %v, want [api p95]", m)
	}
	var b bytes.Buffer
	tb.Print(&b)
	if !strings.Contains(b.String(), "≤ 50 ms MISSED") || !strings.Contains(b.String(), "≤ 300 MiB met") {
		t.Fatalf("table does not say which goals were met:\n%s", b.String())
	}
}
