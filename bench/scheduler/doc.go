// Package scheduler benchmarks Warren's pure placement function: how many
// tasks per second controlplane/scheduler.Schedule places on a large
// simulated cluster, against a first-fit baseline measured in the same run.
// The raft path (placements proposed and applied through the FSM) is
// benchmarked separately.
package scheduler
