// Package raftnode runs a manager's member of the raft cluster: it wires
// hashicorp/raft to the state store's FSM, a raft-boltdb log and stable store
// (fsync on every write — NoSync is never enabled), a file snapshot store
// and a network transport over a caller-provided stream layer (the manager
// multiplexes raft over its mTLS port with ALPN "warren-raft").
//
// A manager's leadership loop reads IsLeader, then LeaderCh for changes;
// on becoming leader it should call Barrier before planning from its store,
// and API reads that must be linearizable call VerifyLeader first.
//
// A follower whose leader's process is gone (its connections here closed,
// its raft port refusing new ones) campaigns once the leader lease has run
// out instead of waiting for the heartbeat timeout (failover.go); a
// partition or a slow leader is still waited out with the configured
// timeouts.
//
// It turns raft's errors into the ones callers act on: *NotLeaderError (send
// the write to the leader), ErrNoQuorum (the cluster is read-only until
// enough managers return), ErrStorage (this manager cannot write its log:
// the error names the disk's failure) and the FSM's store.ErrConflict
// (re-read, retry).
//
// The package must not import the API server, scheduler or anything kernel-
// or runtime-facing (dataplane, runtime, cni, cilium/ebpf, containerd,
// netlink, WireGuard); it knows the state only through package store.
package raftnode
