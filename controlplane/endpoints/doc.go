// Package endpoints computes what the dataplane of each node must know: a
// service's backends grouped by version with traffic weights and health
// (Compute), and a node's complete Assignments (ForNode).
//
// It is pure: it reads objects from a snapshot and returns values; it never
// writes the store. ForNode is the only place that decides what a node is
// told, so it is where "a worker never receives another node's tasks" is
// enforced. It must not import the store, raft, or anything kernel- or
// runtime-facing; turning these values into eBPF maps is the dataplane's job.
package endpoints
