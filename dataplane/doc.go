// Package dataplane is the contract of a node's service load balancing: the
// Dataplane interface (a declarative Set of the complete service table;
// Set(nil) is the empty table), the Config it takes, ErrNotSupported for
// hosts that lack what an implementation needs, the counters every
// implementation reports, and the pure logic they share (weights × health →
// slot tables, and the diff from a Config to map operations).
//
// The implementations live below it: dataplane/ebpf (the socket load
// balancer, the routing mesh and per-task counters, beside their bpf2go
// bindings) and dataplane/proxy (the userspace fallback). dataplane/choose
// picks one of them for the agent. A fake for tests is in dataplane/fake and
// the behaviour every implementation must show is in dataplane/conformance.
//
// This package must not import cilium/ebpf, netlink or any of its
// implementations, nor controlplane, runtime or cni: the agent converts its
// assignments into a Config, and code that only needs the contract builds
// and tests anywhere. imports_test.go enforces it.
package dataplane
