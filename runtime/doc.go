// Package runtime is the node agent's executor: it turns the tasks the
// managers assigned to this node into running containers and reports what it
// observed. It owns the per-task lifecycle (a state machine that only moves
// forward), the restart policy applied on the node (so it keeps working while
// managers are unreachable), health checks, container log files and task
// metrics.
//
// The Worker is what the agent calls: Set(desired tasks), Run, Tasks. How a
// container is really run is behind the Executor and Controller interfaces:
// runtime/containerd implements them on containerd, runtime/fake in memory
// for tests.
//
// Every timer (restart backoff, health intervals, timeouts and start
// periods, the stop grace, housekeeping, log following) runs on the Clock in
// WorkerOptions, which the Worker hands to its controllers. The decisions
// themselves are pure functions of the time they are given (NextRestart,
// HealthTracker, StopGrace); with fake.Clock a test moves time itself and
// asserts "not yet" exactly instead of sleeping.
//
// This package may import the controlplane/api types, zap and prometheus. It
// must not import containerd (that lives in runtime/containerd), cni,
// dataplane or the rest of controlplane.
package runtime
