package nodenet

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenhq/warren/dataplane"
)

// The dataplane's constructors are called only here: when they move to the
// packages of their implementations, this file is the one to change.

func newDataplane(o dataplane.Options) (dataplane.Dataplane, error) { return dataplane.New(o) }

func newCollector(d dataplane.Dataplane) prometheus.Collector { return dataplane.NewCollector(d) }

func newTaskCounters(pinDir string) (*dataplane.TaskCounters, error) {
	return dataplane.NewTaskCounters(pinDir)
}
