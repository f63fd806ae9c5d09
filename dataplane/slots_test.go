package dataplane

import (
	"fmt"
	"net/netip"
	"testing"
)

func be(id string, h Health) Backend {
	n := 0
	fmt.Sscanf(id[1:], "%d", &n)
	return Backend{ID: id, Addr: netip.AddrFrom4([4]byte{10, 42, 0, byte(n)}), Health: h}
}

func TestSlotTable(t *testing.T) {
	tests := []struct {
		name   string
		groups []Group
		want   map[string]int // backend id → slots
		total  int
	}{
		{"empty", nil, map[string]int{}, 0},
		{"one backend", []Group{{"v1", 100, []Backend{be("b1", Active)}}}, map[string]int{"b1": 1}, 1},
		{"three equal", []Group{{"v1", 1, []Backend{be("b1", Active), be("b2", Active), be("b3", Active)}}}, map[string]int{"b1": 1, "b2": 1, "b3": 1}, 3},
		{"canary 90/10", []Group{{"v1", 90, []Backend{be("b1", Active)}}, {"v2", 10, []Backend{be("b2", Active)}}}, map[string]int{"b1": 9, "b2": 1}, 10},
		{"canary 90/10 uneven groups", []Group{{"v1", 90, []Backend{be("b1", Active), be("b2", Active), be("b3", Active)}}, {"v2", 10, []Backend{be("b4", Active)}}}, map[string]int{"b1": 3, "b2": 3, "b3": 3, "b4": 1}, 10},
		{"blue/green 100/0", []Group{{"blue", 100, []Backend{be("b1", Active)}}, {"green", 0, []Backend{be("b2", Active)}}}, map[string]int{"b1": 1}, 1},
		{"unhealthy and terminating excluded", []Group{{"v1", 1, []Backend{be("b1", Unhealthy), be("b2", Active), be("b3", Terminating)}}}, map[string]int{"b2": 1}, 1},
		{"all unhealthy", []Group{{"v1", 1, []Backend{be("b1", Unhealthy)}}}, map[string]int{}, 0},
		{"canary share moves when canary is down", []Group{{"v1", 90, []Backend{be("b1", Active)}}, {"v2", 10, []Backend{be("b2", Unhealthy)}}}, map[string]int{"b1": 1}, 1},
		{"all weights zero", []Group{{"v1", 0, []Backend{be("b1", Active)}}}, map[string]int{}, 0},
		{"inexact 1/3 over 7 and 1", []Group{{"v1", 2, []Backend{be("b1", Active), be("b2", Active), be("b3", Active), be("b4", Active), be("b5", Active), be("b6", Active), be("b7", Active)}}, {"v2", 1, []Backend{be("b8", Active)}}}, map[string]int{"b1": 2, "b2": 2, "b3": 2, "b4": 2, "b5": 2, "b6": 2, "b7": 2, "b8": 7}, 21},
		{"apportioned", []Group{{"v1", 999, []Backend{be("b1", Active)}}, {"v2", 2, []Backend{be("b2", Active)}}}, map[string]int{"b1": 998, "b2": 2}, 1000},
		{"apportioned thirds", []Group{{"v1", 1, []Backend{be("b1", Active)}}, {"v2", 1, []Backend{be("b2", Active)}}, {"v3", 1000, []Backend{be("b3", Active)}}}, map[string]int{"b1": 1, "b2": 1, "b3": 998}, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SlotTable(tt.groups)
			if len(got) != tt.total {
				t.Fatalf("len = %d, want %d", len(got), tt.total)
			}
			counts := map[string]int{}
			for _, b := range got {
				counts[b.ID]++
			}
			if fmt.Sprint(counts) != fmt.Sprint(tt.want) {
				t.Fatalf("slots = %v, want %v", counts, tt.want)
			}
		})
	}
}

// TestSlotTableWeights checks that for many weight pairs the table honours
// the split to within 0.1 percentage point.
func TestSlotTableWeights(t *testing.T) {
	for w1 := uint32(0); w1 <= 1000; w1 += 37 {
		for w2 := uint32(1); w2 <= 1000; w2 += 53 {
			got := SlotTable([]Group{{"a", w1, []Backend{be("b1", Active)}}, {"b", w2, []Backend{be("b2", Active), be("b3", Active)}}})
			n1 := 0
			for _, b := range got {
				if b.ID == "b1" {
					n1++
				}
			}
			share := float64(n1) / float64(len(got))
			want := float64(w1) / float64(w1+w2)
			if d := share - want; d > 0.001 || d < -0.001 {
				t.Fatalf("w=%d/%d: share %.4f, want %.4f", w1, w2, share, want)
			}
		}
	}
}
