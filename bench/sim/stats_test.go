//go:build linux

package sim

import (
	"bufio"
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
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

func TestHistQuantile(t *testing.T) {
	const h = "warren_api_request_duration_seconds"
	b := func(route, code, le string) string {
		return h + `_bucket{code="` + code + `",method="GET",route="` + route + `",le="` + le + `"}`
	}
	before := map[string]float64{
		b("/v1/services", "2xx", "0.01"): 5, b("/v1/services", "2xx", "0.05"): 5, b("/v1/services", "2xx", "+Inf"): 5,
	}
	after := map[string]float64{
		// 100 more ls calls: 50 under 10 ms, 40 in (10, 50] ms, 10 over.
		b("/v1/services", "2xx", "0.01"): 55, b("/v1/services", "2xx", "0.05"): 95, b("/v1/services", "2xx", "+Inf"): 105,
		// Another route and another code, counted or not by match.
		b("/v1/services/{ref}", "2xx", "0.01"): 7, b("/v1/services/{ref}", "2xx", "0.05"): 7, b("/v1/services/{ref}", "2xx", "+Inf"): 7,
		b("/v1/services", "5xx", "0.01"): 0, b("/v1/services", "5xx", "0.05"): 0, b("/v1/services", "5xx", "+Inf"): 0,
	}
	ls := []string{`method="GET"`, `route="/v1/services"`}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 10 * time.Millisecond},  // the 50th of 100 is the last under 10 ms
		{0.7, 30 * time.Millisecond},  // the 20th of the 40 in (10, 50]: half way
		{0.9, 50 * time.Millisecond},  // the last in (10, 50]
		{0.95, 50 * time.Millisecond}, // in +Inf: the highest finite bound
		{0.25, 5 * time.Millisecond},  // half way into the first bucket
	} {
		got, n := HistQuantile(before, after, h, ls, tc.q)
		if n != 100 || got != tc.want {
			t.Errorf("q %.2f: %s of %d, want %s of 100", tc.q, got, n, tc.want)
		}
	}
	if got, n := HistQuantile(before, after, h, []string{`route="/v1/services/{ref}"`}, 0.5); n != 7 || got != 5*time.Millisecond {
		t.Errorf("inspect: %s of %d, want 5ms of 7", got, n)
	}
	if got, n := HistQuantile(after, after, h, ls, 0.5); n != 0 || got != 0 {
		t.Errorf("nothing new: %s of %d", got, n)
	}
}

func TestLedgerNth(t *testing.T) {
	m := map[string]time.Duration{"a": 3 * time.Second, "b": time.Second, "c": 2 * time.Second}
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 3 * time.Second}, {5, 3 * time.Second}, {0, 0}} {
		if got := nth(m, tc.n); got != tc.want {
			t.Errorf("nth(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
	if got := nth(nil, 1); got != 0 {
		t.Errorf("nth of none = %v, want 0", got)
	}
}

// The ledger splits a task's report path where the running report first
// goes out: a report that says something else, or names a task no node was
// seen starting, does not count.
func TestLedgerSplitsTheReportPath(t *testing.T) {
	var l Ledger
	l.Arm(func(*api.Task) bool { return true })
	l.started(&api.Task{ID: "t1", DesiredState: api.TaskRunning})
	time.Sleep(2 * time.Millisecond)
	l.sending(map[string]api.TaskStatus{"t1": {State: api.TaskStarting}, "t9": {State: api.TaskRunning}})
	time.Sleep(2 * time.Millisecond)
	l.sending(map[string]api.TaskStatus{"t1": {State: api.TaskRunning}})
	time.Sleep(2 * time.Millisecond)
	l.reported(map[string]api.TaskStatus{"t1": {State: api.TaskRunning}, "t9": {State: api.TaskRunning}})
	f, err := l.Wait(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Queued) != 1 || len(f.Sent) != 1 {
		t.Fatalf("%d queued and %d sent times, want one of each (t1 alone)", len(f.Queued), len(f.Sent))
	}
	// started → starting report → running report → ack, 2 ms apart at least.
	if f.Queued[0] < 4*time.Millisecond || f.Sent[0] < 2*time.Millisecond {
		t.Errorf("queued %v, sent → acked %v: the split is not where the running report went out", f.Queued[0], f.Sent[0])
	}
	if f.Acked-f.Delivered != f.Queued[0]+f.Sent[0] {
		t.Errorf("queued %v + sent %v ≠ acked %v − delivered %v", f.Queued[0], f.Sent[0], f.Acked, f.Delivered)
	}
}
