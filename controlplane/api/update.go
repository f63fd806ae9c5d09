package api

// UpdateState is where a service's rollout stands (UpdateStatus.State). The
// orchestrator is the only writer; the API server and the CLI read it, so
// every state has one name here instead of a string literal in each.
type UpdateState string

// The values are the JSON wire form and must never change: they are stored
// in raft and read by older CLIs.
const (
	// UpdateUpdating: slots are being moved to the new spec within the
	// rollout's parallelism and delay (also after a canary or blue-green
	// rollout was promoted).
	UpdateUpdating UpdateState = "updating"
	// UpdatePaused: a task of the new spec failed and the failure action is
	// pause; nothing moves until the operator acts.
	UpdatePaused UpdateState = "paused"
	// UpdateAwaitingPromote: a canary or blue-green rollout has deployed the
	// new version beside the old one and waits for `service promote`.
	UpdateAwaitingPromote UpdateState = "awaiting-promote"
	// UpdateCompleted: every slot runs the new spec.
	UpdateCompleted UpdateState = "completed"
	// UpdateRolledBack: the previous spec was made current again, by the
	// operator or by the failure action; CompletedAt is set once it settled.
	UpdateRolledBack UpdateState = "rolled-back"
)
