package manager

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// TestAckTablePropagation: an index is a sample once every ready node has
// acked it, timed from when the leader saw it; a node that never acks makes
// no sample, and the index is given up after propagationGiveUp.
func TestAckTablePropagation(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var a ackTable
	a.committed(10, t0)
	a.committed(10, t0.Add(time.Millisecond)) // the same index again: ignored
	a.committed(12, t0.Add(5*time.Millisecond))
	a.record("n1", 12, t0.Add(20*time.Millisecond))
	a.observe([]string{"n1", "n2"}, t0.Add(20*time.Millisecond))
	if n := testutil.CollectAndCount(a.propagation()); n != 1 {
		t.Fatalf("%d summaries", n)
	}
	if got := sampleCount(t, &a); got != 0 {
		t.Fatalf("%d samples with n2 silent, want 0", got)
	}
	a.record("n2", 10, t0.Add(30*time.Millisecond))
	a.observe([]string{"n1", "n2"}, t0.Add(30*time.Millisecond))
	if got := sampleCount(t, &a); got != 1 {
		t.Fatalf("%d samples once both reached 10, want 1", got)
	}
	if len(a.pending) != 1 || a.pending[0].index != 12 {
		t.Fatalf("pending %+v, want only 12", a.pending)
	}
	// n2 never reaches 12: given up, no sample.
	a.observe([]string{"n1", "n2"}, t0.Add(propagationGiveUp+10*time.Millisecond))
	if got := sampleCount(t, &a); got != 1 || len(a.pending) != 0 {
		t.Fatalf("after the give-up: %d samples, pending %+v", got, a.pending)
	}
	// A repeated ack does not wake the leader loop; a moved one does.
	<-a.woken()
	a.record("n1", 12, t0.Add(time.Minute))
	select {
	case <-a.woken():
		t.Fatal("an unchanged ack woke the leader loop")
	default:
	}
	a.record("n1", 13, t0.Add(time.Minute))
	select {
	case <-a.woken():
	default:
		t.Fatal("a moved ack did not wake the leader loop")
	}
	if at := a.snapshot()["n1"].At; !at.Equal(t0.Add(time.Minute)) {
		t.Fatalf("ack time %v", at)
	}
	// A heartbeat sent before the table moved, arriving after one sent
	// since, neither takes the ack back nor wakes the loop.
	a.record("n1", 12, t0.Add(time.Minute+time.Second))
	if got := a.snapshot()["n1"]; got.Index != 13 || !got.At.Equal(t0.Add(time.Minute)) {
		t.Fatalf("after an overtaken heartbeat the ack is %+v, want 13 as first heard", got)
	}
	select {
	case <-a.woken():
		t.Fatal("an overtaken heartbeat woke the leader loop")
	default:
	}
}

func sampleCount(t *testing.T, a *ackTable) uint64 {
	t.Helper()
	var m dto.Metric
	if err := a.propagation().Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetSummary().GetSampleCount()
}
