//go:build !linux

package ebpf

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenhq/warren/dataplane"
)

// TaskCounters counts each task's traffic with TCX programs; Linux only.
type TaskCounters struct{}

// TaskTraffic is one task's cumulative traffic, seen from the task.
type TaskTraffic struct {
	RxPackets, RxBytes uint64
	TxPackets, TxBytes uint64
}

// NewTaskCounters fails with ErrNotSupported off Linux.
func NewTaskCounters(string) (*TaskCounters, error) {
	return nil, &dataplane.NotSupportedError{What: "task counters on " + runtime.GOOS}
}

func (c *TaskCounters) Set(map[string]string) error { return dataplane.ErrNotSupported }
func (c *TaskCounters) Counts() (map[string]TaskTraffic, error) {
	return nil, dataplane.ErrNotSupported
}
func (c *TaskCounters) Describe(chan<- *prometheus.Desc) {}
func (c *TaskCounters) Collect(chan<- prometheus.Metric) {}
func (c *TaskCounters) Close() error                     { return nil }
