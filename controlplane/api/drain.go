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

// Tables is where every node's service table stands, as the leader heard
// it (GET /v1/tables): the CLI waits on it to say when a change is in
// effect on every node.
type Tables struct {
	// Index is the store's index when the answer was made.
	Index uint64 `json:"index"`
	// Leader is false when a follower answered (the leader was out of
	// reach); a follower hears no acks, so its Nodes say nothing applied.
	Leader bool        `json:"leader"`
	Nodes  []NodeTable `json:"nodes"`
}

// NodeTable is one node's last acknowledged service table.
type NodeTable struct {
	NodeID   string    `json:"node_id"`
	Hostname string    `json:"hostname"`
	State    NodeState `json:"state"`
	// Applied is the index of the table in effect on the node, 0 when the
	// leader has not heard one since it was elected.
	Applied uint64    `json:"applied"`
	At      time.Time `json:"at,omitempty"`
}

// Waiting lists the ready nodes (by hostname, else ID) whose table is older
// than index: a change written at index is in effect everywhere once it is
// empty. Nodes that are down are not waited for, as the drain gate does not.
func (t Tables) Waiting(index uint64) []string {
	var out []string
	for _, n := range t.Nodes {
		if n.State != NodeReady || n.Applied >= index {
			continue
		}
		name := n.Hostname
		if name == "" {
			name = n.NodeID
		}
		out = append(out, name)
	}
	return out
}
