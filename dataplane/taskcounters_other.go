//go:build !linux

package dataplane

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
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
	return nil, &NotSupportedError{What: "task counters on " + runtime.GOOS}
}

func (c *TaskCounters) Set(map[string]string) error             { return ErrNotSupported }
func (c *TaskCounters) Counts() (map[string]TaskTraffic, error) { return nil, ErrNotSupported }
func (c *TaskCounters) Describe(chan<- *prometheus.Desc)        {}
func (c *TaskCounters) Collect(chan<- prometheus.Metric)        {}
func (c *TaskCounters) Close() error                            { return nil }
