//go:build linux

package reliability

import (
	"fmt"
	"testing"
	"time"

	"github.com/warrenhq/warren/kernel-tests/ktest"
)

// cut drops everything h's LAN interface receives and sends (loopback is
// untouched, so its own CLI still answers). A probability below 1 drops
// that share of packets instead (-m statistic).
func (h *host) cut(t *testing.T, probability float64) func() {
	t.Helper()
	var rule []string
	if probability < 1 {
		rule = []string{"-m", "statistic", "--mode", "random", "--probability", fmt.Sprint(probability)}
	}
	rules := [][]string{
		append([]string{"INPUT", "-i", "eth0"}, append(rule, "-j", "DROP")...),
		append([]string{"OUTPUT", "-o", "eth0"}, append(rule, "-j", "DROP")...),
	}
	for _, r := range rules {
		ktest.Run(t, "nsenter", append([]string{"--net=" + h.nsPath(), "--", "iptables", "-w", "-A"}, r...)...)
	}
	return func() {
		for _, r := range rules {
			ktest.RunQuiet("nsenter", append([]string{"--net=" + h.nsPath(), "--", "iptables", "-w", "-D"}, r...)...)
		}
	}
}

// partitions (T2): the leader isolated, a follower isolated, and 25 %
// packet loss on the leader, each for a while under the workload, then
// healed. The checks are T1's; the time from heal until every manager
// agrees on one leader is reported.
func partitions(t *testing.T, c *cluster, a *apiClient, nodes []string) {
	ktest.Binary(t, "iptables")
	w := newWorkload(a, nodes)
	w.start(3, 2, "t2")
	t.Cleanup(w.halt)
	var heal []time.Duration
	faults := []struct {
		name string
		pick func() *host
		p    float64
	}{
		{"isolate leader", func() *host { return c.leaderHost(t, 60*time.Second) }, 1},
		{"isolate follower", func() *host {
			l := c.leaderHost(t, 60*time.Second)
			for _, h := range c.hosts {
				if h != l {
					return h
				}
			}
			return nil
		}, 1},
		{"25% loss on leader", func() *host { return c.leaderHost(t, 60*time.Second) }, 0.25},
	}
	for _, f := range faults {
		w.waitAcks(t, 10, 90*time.Second)
		h := f.pick()
		undo := h.cut(t, f.p)
		w.waitAcks(t, 10, 90*time.Second) // the majority keeps serving
		undo()
		healed := time.Now()
		c.leaderHost(t, 90*time.Second)
		heal = append(heal, time.Since(healed))
		t.Logf("%s (%s): healthy %s after heal", f.name, h.name, heal[len(heal)-1].Round(time.Millisecond))
	}
	w.waitAcks(t, 5, 60*time.Second)
	w.halt()
	lost, lin := w.check(t)
	summary("T2", "partitions and 25% loss", t.Failed(), "leader isolated, follower isolated, 25%% loss on leader; %s; lost %d; %s; one agreed leader after heal: max %s",
		w.figures(), lost, linText(lin), percentile(heal, 1).Round(time.Millisecond))
}
