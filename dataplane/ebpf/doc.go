// Package ebpf is the eBPF implementation of the dataplane contract: the
// socket load balancer (bpf/sock_lb.c, cgroup sock_addr programs), the
// routing mesh's TCX programs (bpf/nodeport.c, which share sock_lb's maps)
// and the per-task traffic counters (bpf/task_counters.c), with the loaders
// that pin their maps and links and fill them from a dataplane.Config.
//
// The bpf2go output (*_bpfel.go and .o) is committed so that building Warren
// needs no clang; `make generate` (the one entry point) rebuilds it
// reproducibly with clang 14. The loaders are Linux only; elsewhere New and
// NewTaskCounters fail with dataplane.ErrNotSupported.
//
// It imports the contract (dataplane) and nothing else of Warren's.
package ebpf

//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -target bpfel -go-package ebpf -output-stem sock_lb SockLB ../../bpf/sock_lb.c -- -I/usr/include/x86_64-linux-gnu -O2 -g -Wall -Werror
//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -target bpfel -go-package ebpf -output-stem nodeport Nodeport ../../bpf/nodeport.c -- -I/usr/include/x86_64-linux-gnu -O2 -g -Wall -Werror
//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -target bpfel -go-package ebpf -output-stem task_counters TaskCounters ../../bpf/task_counters.c -- -I/usr/include/x86_64-linux-gnu -O2 -g -Wall -Werror
//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -target bpfel -go-package ebpf -output-stem conn_errors ConnErrors ../../bpf/conn_errors.c -- -I/usr/include/x86_64-linux-gnu -O2 -g -Wall -Werror
