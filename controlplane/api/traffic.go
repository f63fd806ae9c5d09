package api

// BackendTraffic is what one node's dataplane saw of the connections it
// balanced to one task since the node first saw the task's service split
// traffic between versions (a canary): how many, and how many failed. Nodes report it only
// for such services, only when it changed, in NodeRegistration.Traffic; the
// orchestrator sums it over nodes and versions for canary analysis
// (UpdateConfig.CanaryMaxErrorRate).
type BackendTraffic struct {
	TaskID      string `json:"task_id"`
	Connections uint64 `json:"connections"`
	// ConnectFailures are TCP connections that were never established
	// (refused, timed out); Resets, established ones the task reset.
	ConnectFailures uint64 `json:"connect_failures,omitempty"`
	Resets          uint64 `json:"resets,omitempty"`
}

// Errors is the number of connections that failed either way.
func (b BackendTraffic) Errors() uint64 { return b.ConnectFailures + b.Resets }
