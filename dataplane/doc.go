// Package dataplane owns a node's service load balancing: the Dataplane
// contract (a declarative Set of the complete service table), the pure
// logic every implementation shares (weights × health → slot tables, and the
// diff from a Config to eBPF map operations), the eBPF implementation's map
// sync, and the selection between eBPF and the userspace proxy.
//
// The kernel objects live in dataplane/ebpf (bpf2go output), the proxy's
// forwarding engine in dataplane/proxy; both are driven from here so that
// every implementation uses the same slot table code. A fake for tests is in
// dataplane/fake and the behaviour every implementation must show is in
// dataplane/conformance.
//
// This package must not import controlplane, runtime or cni: the agent
// converts its assignments into a Config.
package dataplane
