// Package store owns Warren's replicated state: the cluster singleton, nodes,
// services, tasks and loaded images, the commands that change them, and the
// raft FSM that applies those commands.
//
// The store is independent of raft. Every change arrives as an encoded
// command (one CommandType byte, then the body) through Store.Apply, which is
// deterministic: it reads neither the clock nor randomness, so every manager
// that applies the same log holds the same state. Readers take an immutable
// View, which costs a pointer load, and may wait for a newer index with
// WaitIndex (blocking queries).
//
// The package must not import raftnode, the API server or anything kernel- or
// runtime-facing (dataplane, runtime, cni, cilium/ebpf, containerd, netlink,
// WireGuard). Its only raft dependency is the raft.FSM interface in fsm.go.
package store
