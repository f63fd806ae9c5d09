// Package sim measures a Warren cluster at the scale the first persona runs
// (500 to 5,000 sites): three real managers (warren processes on loopback,
// each with its own ports and data directory) and N simulated nodes in this
// one process. Every simulated node joins with the worker token like a real
// one (its own key, a CSR, a certificate signed by the cluster CA), then runs
// the real controlplane/agent over mutual TLS against the managers, with the
// real runtime.Worker on the in-memory runtime/fake executor: tasks "run"
// at once or after a delay, may crash, and report status as a real node's
// would. Only containerd, CNI and the kernel are missing.
//
// The scenarios (join, replicated and global services, API latency while
// busy, a weight change, a rolling update, a disconnect wave, leader kills)
// print one table of figures against the goals of issue 19. Profiles:
//
//	make sim-smoke   200 nodes, 2,000 tasks (CI, under a minute)
//	make sim         500 and 2,000 nodes, 10,000 → 50,000 tasks
//
// Where the figures come from. Tasks running are timed on the nodes' side
// (ledger.go): when each task's node began starting it and when a manager
// acknowledged the report that it runs, its raft entry committed; the
// leader's own count is read once at the end, as a check, rather than
// polled through /metrics, which walks every task and on a busy machine
// answered about once a second. The API is timed by a prober in a process
// of its own (prober.go: this test binary re-executed), next to the same
// routes as the leader's request histogram timed them. The failover's
// first write is tried from the kill on, as a retrying script would.
//
// The managers' logs are kept with WARREN_SIM_KEEP=1, and a failed run
// always keeps them.
//
// It is a bench: nothing outside bench/ imports it, so it is not part of the
// release binary.
package sim
