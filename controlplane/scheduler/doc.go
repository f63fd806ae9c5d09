// Package scheduler decides which node each pending task runs on.
//
// It owns placement only: feasibility filters (node state, availability,
// placement constraints, resource reservations, replicas per node), the
// spread score, and the explanation a user reads when a task cannot be
// placed. It is a pure function of its arguments — no store, no clock, no
// goroutines, no I/O; randomness comes in as a *rand.Rand — so the leader can
// run it on a consistent snapshot and propose the returned Plan as one raft
// batch, and the plan applier can re-check it against newer state.
//
// It deliberately does not decide which tasks should exist (that is the
// orchestrator) and must not import the store, raft, or anything kernel- or
// runtime-facing. See README.md for the pipeline.
package scheduler
