package nodenet

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenhq/warren/dataplane"
	"github.com/warrenhq/warren/dataplane/choose"
	"github.com/warrenhq/warren/dataplane/ebpf"
)

// The dataplane's constructors are called only here: choose picks eBPF or the
// proxy; task counters exist only with eBPF.

func newDataplane(o choose.Options) (dataplane.Dataplane, error) { return choose.New(o) }

func newCollector(d dataplane.Dataplane) prometheus.Collector { return dataplane.NewCollector(d) }

// newTaskCounters returns the interface only when the constructor succeeds:
// a nil *TaskCounters must not become a non-nil taskCounters.
func newTaskCounters(pinDir string) (taskCounters, error) {
	tc, err := ebpf.NewTaskCounters(pinDir)
	if err != nil {
		return nil, err
	}
	return tc, nil
}
