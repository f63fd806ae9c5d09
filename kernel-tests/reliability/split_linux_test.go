//go:build linux

package reliability

import (
	"fmt"
	"testing"
	"time"

	"github.com/warrenhq/warren/kernel-tests/ktest"
)

// cutFrom drops what h exchanges with the given peers only: the clients'
// host (and every other address) still reaches h, so a manager on the
// minority side of a split keeps being asked — the case where a stale
// leader could answer reads or acknowledge writes it cannot commit. The
// rules sit in h's namespace and cover both directions.
func (h *host) cutFrom(t *testing.T, peers ...*host) func() {
	t.Helper()
	var rules [][]string
	for _, p := range peers {
		rules = append(rules, []string{"INPUT", "-i", "eth0", "-s", p.ip, "-j", "DROP"}, []string{"OUTPUT", "-o", "eth0", "-d", p.ip, "-j", "DROP"})
	}
	for _, r := range rules {
		ktest.Run(t, "nsenter", append([]string{"--net=" + h.nsPath(), "--", "iptables", "-w", "-A"}, r...)...)
	}
	undone := false
	undo := func() {
		if undone {
			return
		}
		undone = true
		for _, r := range rules {
			ktest.RunQuiet("nsenter", append([]string{"--net=" + h.nsPath(), "--", "iptables", "-w", "-D"}, r...)...)
		}
	}
	t.Cleanup(undo)
	return undo
}

// split cuts every host of side from every host of other and returns the
// heal.
func split(t *testing.T, side, other []*host) func() {
	var undo []func()
	for _, h := range side {
		undo = append(undo, h.cutFrom(t, other...))
	}
	return func() {
		for _, u := range undo {
			u()
		}
	}
}

// others is c's hosts without those given.
func (c *cluster) others(not ...*host) []*host {
	var out []*host
	for _, h := range c.hosts {
		skip := false
		for _, n := range not {
			skip = skip || h == n
		}
		if !skip {
			out = append(out, h)
		}
	}
	return out
}

// splits (T2): the managers split in two while the clients still reach
// both sides — 1|2 with the leader alone, 1|2 with the leader in the
// majority — and then the leader's links flapping (cut, healed, cut …).
// Same verdicts as T1; the time from heal until every manager agrees on
// one leader is reported (the issue asks for 10 s; the figure is reported,
// not asserted, as every duration here).
func splits(t *testing.T, c *cluster, a *apiClient, nodes []string) {
	ktest.Binary(t, "iptables")
	w := newWorkload(a, nodes)
	w.start(3, 2, "t2s")
	t.Cleanup(w.halt)
	var heal []time.Duration
	healed := func(what string) {
		at := time.Now()
		c.leaderHost(t, 90*time.Second)
		heal = append(heal, time.Since(at))
		t.Logf("%s: one agreed leader %s after heal", what, heal[len(heal)-1].Round(time.Millisecond))
	}
	for _, f := range []struct {
		name     string
		minority func(lead *host) *host
	}{
		{"1|2, leader in the minority", func(lead *host) *host { return lead }},
		{"1|2, leader in the majority", func(lead *host) *host { return c.others(lead)[0] }},
	} {
		w.waitAcks(t, 10, 90*time.Second)
		lead := c.leaderHost(t, 60*time.Second)
		alone := f.minority(lead)
		undo := split(t, []*host{alone}, c.others(alone))
		w.waitAcks(t, 10, 90*time.Second) // the majority keeps serving
		undo()
		healed(fmt.Sprintf("%s (%s alone)", f.name, alone.name))
	}

	// The flapping link: the leader's links to the other managers go down
	// and up every 1.5 s; elections may follow each cut.
	w.waitAcks(t, 10, 90*time.Second)
	flapper := c.leaderHost(t, 60*time.Second)
	flapFor := time.Duration(profile(10, 20)) * time.Second
	flaps := 0
	before := w.ackCount()
	for end := time.Now().Add(flapFor); time.Now().Before(end); flaps++ {
		undo := flapper.cutFrom(t, c.others(flapper)...)
		time.Sleep(1500 * time.Millisecond)
		undo()
		time.Sleep(1500 * time.Millisecond)
	}
	during := w.ackCount() - before
	healed(fmt.Sprintf("%d flaps of %s's links", flaps, flapper.name))
	w.waitAcks(t, 10, 60*time.Second)
	w.halt()
	lost, lin := w.check(t)
	summary("T2", "splits and a flapping link", t.Failed(), "1|2 leader in minority, 1|2 leader in majority (clients reach both sides), %d flaps over %s (%d writes acked while flapping); %s; lost %d; %s; one agreed leader after heal: max %s",
		flaps, flapFor, during, w.figures(), lost, linText(lin), percentile(heal, 1).Round(time.Millisecond))
}

// TestFiveManagerSplit (T2, full profile): five managers split 2|3, once
// with the leader on the side of two and once on the side of three, the
// clients reaching every manager throughout. It takes about 30 s here,
// which on top of this suite's other short rows would take reliability-ci
// past its budget, so the short profile leaves it to make reliability.
func TestFiveManagerSplit(t *testing.T) {
	if !fullProfile() {
		t.Skip("five managers: full profile only (make reliability)")
	}
	ktest.Binary(t, "iptables")
	c := managersN(t, 5)
	a := newAPIClient(t, c)
	w := newWorkload(a, nodeIDs(t, c))
	w.start(3, 2, "t2f")
	t.Cleanup(w.halt)
	var heal []time.Duration
	for _, leaderWithTwo := range []bool{true, false} {
		w.waitAcks(t, 10, 90*time.Second)
		lead := c.leaderHost(t, 60*time.Second)
		rest := c.others(lead)
		two, three := []*host{lead, rest[0]}, rest[1:]
		if !leaderWithTwo {
			two, three = rest[:2], append([]*host{lead}, rest[2:]...)
		}
		undo := split(t, two, three)
		w.waitAcks(t, 10, 90*time.Second) // the three keep serving
		undo()
		at := time.Now()
		c.leaderHost(t, 90*time.Second)
		heal = append(heal, time.Since(at))
		t.Logf("2|3, leader with the two: %v: one agreed leader %s after heal", leaderWithTwo, heal[len(heal)-1].Round(time.Millisecond))
	}
	w.waitAcks(t, 10, 60*time.Second)
	w.halt()
	lost, lin := w.check(t)
	summary("T2", "five managers split 2|3", t.Failed(), "leader with the two, leader with the three; %s; lost %d; %s; one agreed leader after heal: max %s",
		w.figures(), lost, linText(lin), percentile(heal, 1).Round(time.Millisecond))
}
