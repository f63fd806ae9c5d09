// Package orchestrator decides which tasks should exist: the reconcilers for
// replicated and global services, node liveness and the disconnect policy
// (a down node's tasks are unknown, not gone: disconnect.go),
// restart-after-failure, drain, and the rollout strategies (rolling, canary, blue-green) with
// promote and rollback.
//
// Reconcile is a pure function in the style of Nomad's reconciler: it takes
// the time and a consistent snapshot of the cluster as arguments and returns
// buckets of objects to write (create / change desired state / delete, nodes
// to mark down, services whose rollout status changed). It never writes. The
// leader proposes a Result as one raft batch with each object's Meta.Version
// as the expectation, so a Result computed from a stale snapshot is refused
// rather than applied. Objects in a Result are full copies of the snapshot's
// objects with the change applied; Meta is left as read.
//
// It does not place tasks (that is the scheduler; global tasks arrive at the
// scheduler with their node already chosen) and must not import the store,
// raft, or anything kernel- or runtime-facing.
package orchestrator
