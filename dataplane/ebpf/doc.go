// Package ebpf holds the compiled socket load-balancing programs
// (bpf/sock_lb.c), the routing mesh's TCX programs (bpf/nodeport.c, which
// share sock_lb's maps) and their bpf2go bindings. The output is committed so that
// building Warren needs no clang; `make generate` (the one entry point)
// rebuilds it reproducibly with clang 14.
//
// It owns no policy: dataplane loads, pins and fills these objects. It must
// not import dataplane.
package ebpf

//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -target bpfel -go-package ebpf -output-stem sock_lb SockLB ../../bpf/sock_lb.c -- -I/usr/include/x86_64-linux-gnu -O2 -g -Wall -Werror
//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -target bpfel -go-package ebpf -output-stem nodeport Nodeport ../../bpf/nodeport.c -- -I/usr/include/x86_64-linux-gnu -O2 -g -Wall -Werror
//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -target bpfel -go-package ebpf -output-stem task_counters TaskCounters ../../bpf/task_counters.c -- -I/usr/include/x86_64-linux-gnu -O2 -g -Wall -Werror
