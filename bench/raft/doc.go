// Package raftbench measures what users of a Warren cluster feel from the
// replicated state: how many raft entries per second three managers commit
// (one writer, 64 writers, batched placements) and how fast the leader
// places 10,000 tasks on 500 nodes through the real scheduler and raft path.
//
// Every benchmark runs a real three-manager cluster on loopback TCP with
// mutual TLS and fsync on (controlplane/raftnode/raftnodetest), and reports
// its figures next to a baseline measured in the same run (one entry at a
// time), as ratios. Run with:
//
//	go test -run '^$' -bench . -benchtime 1x ./bench/raft/
//
// The package has no non-test code and must not import anything kernel- or
// runtime-facing.
package raftbench
