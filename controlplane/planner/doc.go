// Package planner is the leader's decision: it turns one consistent snapshot
// of the store into the one batch the leader proposes to raft. It runs the
// pure cores in order — allocator (subnets, VIPs), orchestrator (which tasks
// should exist), scheduler (where pending tasks go) — on the state as it
// will be after the earlier stages' writes, and guards every object it
// rewrites with the version it read, so a plan computed on stale state is
// refused by the FSM and recomputed (the Nomad plan applier's optimistic
// concurrency).
//
// It is a pure function: time, randomness and task IDs come in as
// arguments, the snapshot is only read, and nothing here reads a clock,
// talks to raft or blocks. The manager's leader loop owns the I/O around it
// (read the view, apply the batch, wait). It must not import raftnode,
// manager, or anything kernel- or runtime-facing; it imports store only for
// the Batch it returns. See controlplane/README.md for the whole pipeline.
package planner
