package nodenet

import (
	"context"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/api"
)

// taskCounters is what Traffic needs of the dataplane's per-task counters.
type taskCounters interface {
	prometheus.Collector
	Set(tasks map[string]string) error // task ID -> host veth
	Close() error
}

// Traffic keeps a TCX counter pair on the host end of every running
// task's veth.
type Traffic struct {
	log      *zap.Logger
	counters taskCounters
	tasks    func() map[string]api.TaskStatus
}

// NewTraffic loads the counters; it fails where TCX is unavailable, and
// the node then runs without per-task counters. tasks lists the node's
// tasks as the worker sees them.
func NewTraffic(nodeID string, tasks func() map[string]api.TaskStatus, log *zap.Logger) (*Traffic, error) {
	tc, err := newTaskCounters(filepath.Join(PinDir(nodeID), "tasks"))
	if err != nil {
		return nil, err
	}
	return &Traffic{log: log, counters: tc, tasks: tasks}, nil
}

// Collector exports the per-task counters.
func (t *Traffic) Collector() prometheus.Collector { return t.counters }

// Run follows the node's tasks until ctx ends.
func (t *Traffic) Run(ctx context.Context) {
	tick := time.NewTicker(3 * time.Second)
	defer tick.Stop()
	reported := ""
	for {
		if err := t.counters.Set(TaskVeths(t.tasks())); err != nil && err.Error() != reported {
			t.log.Debug("task counters", zap.Error(err))
			reported = err.Error()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Close detaches the counters.
func (t *Traffic) Close() { _ = t.counters.Close() }
