// Package controlplane is the root of Warren's control plane: the replicated
// state (store, raftnode), identity (ca), the pure cores (scheduler,
// orchestrator, endpoints, allocator), the API (apiserver, client) and the
// manager-facing half of the node agent (agent).
//
// The control plane describes what should run; it never touches the kernel or
// the container runtime. Nothing under controlplane/ may import dataplane/,
// runtime/, cni/, cilium/ebpf, containerd, netlink or WireGuard —
// imports_test.go enforces it.
package controlplane
