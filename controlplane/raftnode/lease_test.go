package raftnode

import (
	"testing"
	"time"
)

func TestReadLease(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name                         string
		heartbeat, election, leaseTO time.Duration
		want                         time.Duration
	}{
		{"warren defaults: the leader lease less a tenth", 500 * ms, 500 * ms, 250 * ms, 225 * ms},
		{"the sim's 2 s raft timeout", 2000 * ms, 2000 * ms, 1000 * ms, 900 * ms},
		{"a heartbeat timeout below the leader lease bounds it", 100 * ms, 500 * ms, 250 * ms, 90 * ms},
		{"an election timeout below both bounds it", 500 * ms, 200 * ms, 250 * ms, 180 * ms},
		{"an unset timeout means no lease", 500 * ms, 500 * ms, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := readLease(tc.heartbeat, tc.election, tc.leaseTO); got != tc.want {
				t.Fatalf("readLease(%v, %v, %v) = %v, want %v", tc.heartbeat, tc.election, tc.leaseTO, got, tc.want)
			}
		})
	}
}
