package nodenet

import (
	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/dataplane"
)

// BackendTraffic is the dataplane's cumulative count of connections to each
// backend task, and of those that failed, summed over the ports of its
// service; the agent reports windows of it for canary analysis. A dataplane
// that does not count yields nothing.
func (s *Sink) BackendTraffic() (map[string]api.BackendTraffic, error) {
	src, ok := s.dp.(dataplane.CounterSource)
	if !ok {
		return nil, nil
	}
	cs, err := src.Counters()
	return backendTraffic(cs), err
}

func backendTraffic(cs []dataplane.ServiceCounters) map[string]api.BackendTraffic {
	out := map[string]api.BackendTraffic{}
	for _, c := range cs {
		for id, n := range c.Backends {
			b := out[id]
			b.TaskID = id
			b.Connections += n
			out[id] = b
		}
		for id, e := range c.Errors {
			b := out[id]
			b.TaskID = id
			b.ConnectFailures += e.ConnectFailures
			b.Resets += e.Resets
			out[id] = b
		}
	}
	return out
}
