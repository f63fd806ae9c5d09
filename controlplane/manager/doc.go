// Package manager composes a Warren manager: the mTLS listener that carries
// both the API and raft (told apart by ALPN), the raft node and its store,
// the cluster CA, the API server, and the leader loop that runs the
// orchestrator and the scheduler.
//
// It owns the manager's data directory layout and the three ways a manager
// starts: init (a new cluster), join (with a manager token) and resume (an
// existing data directory — never re-bootstrapped).
//
// Like all of controlplane/, it must not import kernel- or runtime-facing
// code.
package manager
