package nodenet

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenhq/warren/dataplane"
)

// The dataplane's constructors are called only here: when they move to the
// packages of their implementations, this file is the one to change.

func newDataplane(o dataplane.Options) (dataplane.Dataplane, error) { return dataplane.New(o) }

func newCollector(d dataplane.Dataplane) prometheus.Collector { return dataplane.NewCollector(d) }

// newTaskCounters returns the interface only when the constructor succeeds:
// a nil *TaskCounters must not become a non-nil taskCounters.
func newTaskCounters(pinDir string) (taskCounters, error) {
	tc, err := dataplane.NewTaskCounters(pinDir)
	if err != nil {
		return nil, err
	}
	return tc, nil
}
