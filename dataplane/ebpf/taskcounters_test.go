//go:build linux

package ebpf

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestDiffTaskSet(t *testing.T) {
	have := map[string]*taskAttach{"a": {slot: 0}, "b": {slot: 1}, "gone": {slot: 2}, "old": {slot: 3}}
	keep, drop := diffTaskSet(have, map[string]string{"b": "if1", "a": "if0", "new": "if9"})
	if want := []string{"a", "b", "new"}; !reflect.DeepEqual(keep, want) {
		t.Errorf("keep = %v, want %v", keep, want)
	}
	if want := []string{"gone", "old"}; !reflect.DeepEqual(drop, want) {
		t.Errorf("drop = %v, want %v", drop, want)
	}
	keep, drop = diffTaskSet(have, nil)
	if len(keep) != 0 || len(drop) != 4 {
		t.Errorf("empty want: keep %v, drop %v", keep, drop)
	}
}

func TestFreeTaskSlot(t *testing.T) {
	have := map[string]*taskAttach{}
	for i := uint32(0); i < 3; i++ {
		s, ok := freeTaskSlot(have, 4)
		if !ok || s != i {
			t.Fatalf("slot %d, %v; want %d", s, ok, i)
		}
		have[string(rune('a'+i))] = &taskAttach{slot: s}
	}
	delete(have, "b") // slot 1 is free again and lowest
	if s, ok := freeTaskSlot(have, 4); !ok || s != 1 {
		t.Fatalf("reuse: slot %d, %v; want 1", s, ok)
	}
	have["b"] = &taskAttach{slot: 1}
	have["d"] = &taskAttach{slot: 3}
	if s, ok := freeTaskSlot(have, 4); ok {
		t.Fatalf("full table gave slot %d", s)
	}
}

func TestTaskPinName(t *testing.T) {
	for _, c := range []struct {
		slot uint32
		dir  string
	}{{0, "ingress"}, {65535, "egress"}, {4294967295, "ingress"}} {
		s, d, ok := parseTaskPin(taskPinName(c.slot, c.dir))
		if !ok || s != c.slot || d != c.dir {
			t.Errorf("round trip of %d/%s: %d/%s/%v", c.slot, c.dir, s, d, ok)
		}
	}
	for _, bad := range []string{"task_1_sideways", "task__ingress", "task_01_ingress", "task_x_egress",
		"link_np_ingress", "task_counts", "task_4294967296_ingress", "task_-1_egress"} {
		if _, _, ok := parseTaskPin(bad); ok {
			t.Errorf("parseTaskPin(%q) accepted", bad)
		}
	}
}

func TestTaskIDName(t *testing.T) {
	for _, id := range []string{"t", "web.3.k2j4h5", strings.Repeat("x", maxTaskIDLen)} {
		if got := taskIDString(taskIDName(id)); got != id {
			t.Errorf("round trip of %q: %q", id, got)
		}
	}
}

type taskTrafficCollector struct {
	counts map[string]TaskTraffic
	err    error
}

func (c taskTrafficCollector) Describe(ch chan<- *prometheus.Desc) { describeTaskTraffic(ch) }
func (c taskTrafficCollector) Collect(ch chan<- prometheus.Metric) {
	collectTaskTraffic(ch, c.counts, c.err)
}

func TestCollectTaskTraffic(t *testing.T) {
	c := taskTrafficCollector{counts: map[string]TaskTraffic{
		"web.1": {RxPackets: 1, RxBytes: 100, TxPackets: 2, TxBytes: 300},
		"db.1":  {},
	}}
	problems, err := testutil.CollectAndLint(c)
	if err != nil || len(problems) != 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
	want := `
# HELP warren_task_network_bytes_total Bytes (Ethernet frames) on a task's network interface; rx: received by the task, tx: sent by it.
# TYPE warren_task_network_bytes_total counter
warren_task_network_bytes_total{direction="rx",task="db.1"} 0
warren_task_network_bytes_total{direction="rx",task="web.1"} 100
warren_task_network_bytes_total{direction="tx",task="db.1"} 0
warren_task_network_bytes_total{direction="tx",task="web.1"} 300
# HELP warren_task_network_counters_read_failed 1 if reading the task network counters failed during this scrape.
# TYPE warren_task_network_counters_read_failed gauge
warren_task_network_counters_read_failed 0
# HELP warren_task_network_packets_total Packets on a task's network interface; rx: received by the task, tx: sent by it.
# TYPE warren_task_network_packets_total counter
warren_task_network_packets_total{direction="rx",task="db.1"} 0
warren_task_network_packets_total{direction="rx",task="web.1"} 1
warren_task_network_packets_total{direction="tx",task="db.1"} 0
warren_task_network_packets_total{direction="tx",task="web.1"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	c = taskTrafficCollector{err: errors.New("boom")}
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP warren_task_network_counters_read_failed 1 if reading the task network counters failed during this scrape.
# TYPE warren_task_network_counters_read_failed gauge
warren_task_network_counters_read_failed 1
`), "warren_task_network_counters_read_failed"); err != nil {
		t.Fatal(err)
	}
}
