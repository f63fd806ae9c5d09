// Package manager measures what a Warren manager costs to run: resident
// memory idle and with 100 services, and the time from `cluster init` to a
// manager that answers — the real binary (WARREN_BIN, or one it builds)
// as a separate process, so RSS is the manager's alone — and, in process at
// issue 19's size (2,000 nodes × 25 tasks; 500 × 20 under
// WARREN_BENCH_SMOKE), the two things the leader does on every change: the
// service table every node's watch is sent (BenchmarkServiceTable, built
// from the one before against from scratch) and the plan of a converged
// cluster (BenchmarkPlanSteady, against one copy of the tasks).
package manager
