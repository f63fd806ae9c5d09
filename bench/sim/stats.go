//go:build linux

package sim

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Quantile is the q-quantile (0 ≤ q ≤ 1) of xs by the nearest-rank method:
// the smallest value with at least q of the samples at or below it. It
// returns 0 for no samples.
func Quantile(xs []time.Duration, q float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(q * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// Latencies collects durations from many goroutines.
type Latencies struct {
	mu      sync.Mutex
	xs      []time.Duration
	errs    int
	lastErr error
}

// Add records one sample, or one failure when err is not nil.
func (l *Latencies) Add(d time.Duration, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.errs++
		l.lastErr = err
		return
	}
	l.xs = append(l.xs, d)
}

// LastErr is the last failure recorded, nil if none.
func (l *Latencies) LastErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastErr
}

// Summary is "p50 / p95 / p99 (n, errors)".
func (l *Latencies) Summary() (p50, p95, p99 time.Duration, n, errs int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Quantile(l.xs, .5), Quantile(l.xs, .95), Quantile(l.xs, .99), len(l.xs), l.errs
}

// Figure is one row of the table: what was measured, its value, the goal
// and whether it was met (Goal empty: no goal, only a figure).
type Figure struct {
	Name  string
	Value string
	Goal  string
	Met   *bool
}

// Table holds the figures of one run.
type Table struct {
	Title string
	Rows  []Figure
}

// Add appends a figure without a goal.
func (t *Table) Add(name, format string, args ...any) {
	t.Rows = append(t.Rows, Figure{Name: name, Value: fmt.Sprintf(format, args...)})
}

// Goal appends a figure with its goal and whether it was met.
func (t *Table) Goal(name, goal string, met bool, format string, args ...any) {
	t.Rows = append(t.Rows, Figure{Name: name, Value: fmt.Sprintf(format, args...), Goal: goal, Met: &met})
}

// Missed lists the figures whose goal was not met.
func (t *Table) Missed() []string {
	var out []string
	for _, r := range t.Rows {
		if r.Met != nil && !*r.Met {
			out = append(out, r.Name)
		}
	}
	return out
}

// Print writes the table aligned in columns.
func (t *Table) Print(w io.Writer) {
	fmt.Fprintf(w, "\n%s\n%s\n", t.Title, strings.Repeat("─", len([]rune(t.Title))))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tvalue\tgoal\t")
	for _, r := range t.Rows {
		verdict := ""
		if r.Met != nil {
			verdict = "met"
			if !*r.Met {
				verdict = "MISSED"
			}
			verdict = r.Goal + " " + verdict
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", r.Name, r.Value, verdict)
	}
	tw.Flush()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// HistQuantile is the q-quantile of the observations a Prometheus
// histogram (name, its _bucket series) gained between two scrapes, over
// the series whose labels include every one of match (`method="GET"`),
// interpolated within the bucket it falls in as histogram_quantile does.
// It returns the count of observations too; 0 and 0 when there were none.
// A quantile in the +Inf bucket is reported as the highest finite bound.
func HistQuantile(before, after map[string]float64, name string, match []string, q float64) (time.Duration, int) {
	byLe := map[float64]float64{}
	prefix := name + "_bucket{"
	for series, v := range after {
		if !strings.HasPrefix(series, prefix) || !hasLabels(series, match) {
			continue
		}
		i := strings.Index(series, `le="`)
		if i < 0 {
			continue
		}
		leStr := series[i+4:]
		le, err := strconv.ParseFloat(leStr[:strings.IndexByte(leStr, '"')], 64) // "+Inf" too
		if err != nil {
			continue
		}
		byLe[le] += v - before[series]
	}
	les := make([]float64, 0, len(byLe))
	for le := range byLe {
		les = append(les, le)
	}
	slices.Sort(les)
	if len(les) == 0 || byLe[les[len(les)-1]] <= 0 {
		return 0, 0
	}
	total := byLe[les[len(les)-1]]
	rank := q * total
	lower, below := 0.0, 0.0
	for _, le := range les {
		c := byLe[le]
		if c >= rank {
			if math.IsInf(le, 1) {
				return time.Duration(lower * float64(time.Second)), int(total)
			}
			frac := 1.0
			if c > below {
				frac = (rank - below) / (c - below)
			}
			return time.Duration((lower + (le-lower)*frac) * float64(time.Second)), int(total)
		}
		lower, below = le, c
	}
	return time.Duration(lower * float64(time.Second)), int(total)
}

// hasLabels reports whether series carries every label of match, each
// written name="value" as in the exposition format.
func hasLabels(series string, match []string) bool {
	for _, m := range match {
		if !strings.Contains(series, "{"+m+",") && !strings.Contains(series, ","+m+",") &&
			!strings.Contains(series, ","+m+"}") && !strings.Contains(series, "{"+m+"}") {
			return false
		}
	}
	return true
}
