// Package node measures what Warren costs on a node that runs tasks: the
// resident memory of every Warren process of a node (the daemon and its
// device process, which serves the userspace WireGuard device and DNS —
// or, after an upgrade, the previous binary's device beside the new one —
// found by executable and network namespace).
// BenchmarkNodeRSS runs a one-node cluster with 10 and 50 tasks against the
// same node with none in the same run (goal, issue 10: ≤ 60 MiB PSS with
// 50 tasks); BenchmarkWorkerRSS a manager and a worker on two namespace
// hosts, the worker idle and with 10 tasks (goal, issue 17: ≤ 40 MB, shown
// against the worker daemon and against all its processes). It needs root,
// containerd and runc, and runs the real binary (WARREN_BIN) on the demo
// image (WARREN_DEMO_IMAGE), both built by `make build demo-image`.
//
// Each process is reported by VmRSS, RssAnon and PSS, and each group also
// "together": its page frames counted once (pagemap), what it would hold on
// a machine of its own — PSS shares the binary's pages with every process
// mapping them, the manager beside a worker included.
// WARREN_BENCH_SMAPS_DIR=DIR keeps each process's smaps, and
// WARREN_BENCH_PPROF_DIR=DIR the one-node daemon's heap and goroutine
// profiles (finely sampled) at each step.
//
// Each figure is the peak of readings once a second over a trim period
// (memlimit.TrimPeriod): every process drops its mappings of the binary
// once a period and maps pages again as it uses them, so one reading
// would catch whichever phase it happened to. The worker with 10 tasks is
// read twice: just after the starts ("10 tasks starting": the daemon still
// maps the code that started them, pulling, CNI and containerd's client,
// until its next trim) and in the steady state after it ("10 tasks", the
// figure the goal is read against, as idle is read after the join settles).
//
// Where the memory goes (measured 2026-12-01, 50 tasks on one node, about
// 58 MiB in all before the trim, 48 after): about half was the binary's
// pages. Every package's init runs in every process and touches its
// package's code, and the kernel maps the pages around each fault that are
// already cached, so each process mapped most of the 32 MB binary — shared,
// so the group paid for it about once (~29 MiB); trimmed, each process maps
// what it used in the last period (the daemon ~18 MiB, a device ~3). The
// rest is each process's own: the daemon's heap (live ~5 MiB at 50 tasks,
// plus the headroom controlplane/memlimit allows), its goroutine stacks
// (three goroutines and one pending containerd Wait call per task) and
// runtime metadata; and the device process's ~6.3 MiB anonymous, most of it
// what the binary's dependencies allocate at init and keep (compiled JSON
// schemas, regular expressions, protobuf descriptors) — Warren's own
// package-level state is a few KiB. That cost is per process, so one device
// process serves both WireGuard and DNS: as two it was 6.3 + 5.2 MiB
// anonymous; as one it holds what the WireGuard device alone did. A worker
// with 10 tasks went from 41.1 to 33.9 MiB together (3 processes to 2,
// BenchmarkWorkerRSS, 2026-12-01), idle from 36.6 to 31.4.
package node
