package raftbench

import (
	"fmt"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/raftnode/raftnodetest"
)

// BenchmarkLeaderFailover kills the leader and measures how long writes
// are unavailable: from the kill until a new leader acknowledges a write.
// The baseline is the configured election timeout (500ms by default): the
// ratio says how many timeouts a failover costs.
func BenchmarkLeaderFailover(b *testing.B) {
	c := raftnodetest.NewCluster(b, 3, nil)
	c.Form()
	const electionTimeout = 500 * time.Millisecond // raftnode's default
	var total time.Duration
	var worst time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		lead := c.Leader(10 * time.Second)
		c.WaitAll(c.ApplyAnywhere(raftnodetest.PutTask(fmt.Sprintf("pre-%d", i)), 10*time.Second), 10*time.Second)
		killed := -1
		for k, m := range c.Members {
			if m == lead {
				killed = k
			}
		}
		b.StartTimer()
		start := time.Now()
		c.Stop(killed)
		c.ApplyAnywhere(raftnodetest.PutTask(fmt.Sprintf("post-%d", i)), 20*time.Second)
		d := time.Since(start)
		b.StopTimer()
		total += d
		worst = max(worst, d)
		c.Start(killed)
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-unavailable")
	b.ReportMetric(float64(worst.Milliseconds()), "ms-worst")
	b.ReportMetric(float64(total)/float64(b.N)/float64(electionTimeout), "x-election-timeout")
}
