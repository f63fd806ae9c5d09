package orchestrator

import (
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// ClusterState is the snapshot Reconcile reads. Now is the leader's clock;
// nothing in this package reads a clock of its own.
type ClusterState struct {
	Now time.Time
	// LeaderSince is when the leader computing this began to hear
	// heartbeats. No node is judged down before LeaderSince plus the grace:
	// heartbeats live in the leader's memory, so a leader that just started
	// (a restarted one-node cluster, a failover) knows only the stored
	// heartbeat, which is the last one that changed something and may be
	// hours old. Zero means no such floor (tests of the grace itself).
	LeaderSince time.Time
	Cluster     api.Cluster
	Nodes       []api.Node
	Services    []api.Service
	Tasks       []api.Task
	// Acks are the service-table indexes the leader heard from each node;
	// nil when the caller does not track them, and then a draining task
	// stops at once (drain.go).
	Acks map[string]api.TableAck
	// DrainTimeout bounds how long a stop waits for nodes that do not ack
	// (DefaultDrainTimeout when zero).
	DrainTimeout time.Duration
}

// Result is what the leader should propose. Every slice is sorted
// deterministically so that two leaders computing from the same snapshot
// propose the same batch.
type Result struct {
	// Create are new tasks: Status.State pending, DesiredState running, with
	// slot, spec, spec version and version label set. Global tasks carry
	// their NodeID already.
	Create []api.Task
	// Update are existing tasks whose DesiredState changed (shutdown or
	// remove). Tasks on a node that went down also carry Status.State
	// orphaned.
	Update []api.Task
	// Delete are terminal tasks beyond the history kept per slot, tasks of
	// deleted services once stopped, and never-placed tasks that are no
	// longer wanted.
	Delete []api.Task
	// NodesDown are nodes whose heartbeat is older than the grace, with
	// Status.State down.
	NodesDown []api.Node
	// Services are services whose rollout status changed, or whose spec was
	// reverted by an automatic rollback.
	Services []api.Service
	// Statuses are services whose only change is their Status (counts and
	// convergence), kept apart so that Services still means "the rollout
	// or the spec changed".
	Statuses []api.Service
	// NextEval, when not zero, is the earliest time at which Reconcile would
	// decide something new without any write happening first (an update
	// delay ends, a heartbeat expires). The leader should re-run by then.
	NextEval time.Time
}

// Empty reports whether there is nothing to write.
func (r Result) Empty() bool {
	return len(r.Create) == 0 && len(r.Update) == 0 && len(r.Delete) == 0 && len(r.NodesDown) == 0 && len(r.Services) == 0 &&
		len(r.Statuses) == 0
}

// Failure actions and update orders in api.UpdateConfig.
const (
	FailurePause    = "pause"
	FailureRollback = "rollback"
	FailureContinue = "continue"

	OrderStopFirst  = "stop-first"
	OrderStartFirst = "start-first"
)

const (
	// HistoryLimit is how many terminal tasks are kept per slot (per node
	// for global services) so `service ps` can show why a slot restarted.
	HistoryLimit = 5
	// DefaultNodeDownGrace applies when the cluster object has none.
	DefaultNodeDownGrace = 30 * time.Second
	// DefaultCanaryWeight is used when a canary rollout names no weight.
	DefaultCanaryWeight = 10
	// DefaultKeep is how long the previous version stays after a canary or
	// blue-green promotion when the service names no UpdateConfig.Keep
	// (PRD 3.2: v1 scales down after 30 s).
	DefaultKeep = 30 * time.Second
	// DefaultDrainTimeout is how long a task asked to stop stays running
	// for nodes that have not acknowledged a service table without it: a
	// node cut off but not yet down. Acks normally come within tens of
	// milliseconds.
	DefaultDrainTimeout = 10 * time.Second
)
