package api

import "time"

// Drain is a task's way out of every node's service table before it stops.
// The orchestrator sets it when it first asks a backend to stop: from then on
// endpoints list the task as terminating (no slots, no new routing-mesh
// flows, out of tasks.NAME) while its node keeps it running, until every
// node that could route to it has applied a service table without it, or
// DrainTimeout ran out for the nodes that did not say so. Only then is the
// task handed to its node as stopped, and its stop signal and grace run.
type Drain struct {
	// Since is when the task was asked to stop.
	Since time.Time `json:"since"`
	// Index is the raft index from which every node's table has the task
	// terminating: the first version of the task the leader saw with its
	// desired state past running. 0 until the leader recorded it.
	Index uint64 `json:"index,omitempty"`
	// Done is when the node was told to stop the task; zero while draining.
	Done time.Time `json:"done,omitempty"`
	// Message says why the drain ended: every node acknowledged, or which
	// nodes were given up on.
	Message string `json:"message,omitempty"`
}

// Draining reports whether t is held running on its node while the other
// nodes take it out of their tables.
func (t *Task) Draining() bool {
	return t.Drain != nil && t.Drain.Done.IsZero() && !t.DesiredState.Before(TaskShutdown) && !t.Status.State.Terminal()
}

// TableAck is what a node last said about its service table: the index of
// the assignments its dataplane and DNS have applied, and when the leader
// heard it. Leaders keep these in memory, as they keep heartbeats.
type TableAck struct {
	// Index 0 means nothing applied yet (or an agent too old to say):
	// such a node is waited for until the drain timeout.
	Index uint64    `json:"index"`
	At    time.Time `json:"at"`
}
