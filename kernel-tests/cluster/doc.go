// Package clustertest is Warren's end-to-end suite: real warren binaries,
// one per "host", each host a network namespace with its own containerd,
// joined by veth pairs to a bridge that lives in a namespace of its own (the
// "switch"), so nothing is added to the machine's root namespace.
//
// The tests drive the cluster only the way an operator would: the CLI
// against a manager's local socket, HTTP to task addresses and service VIPs,
// and Prometheus scrapes of each node's metrics listener. They measure
// (and log, never assert on) how long init, join and convergence take.
//
// Without root every test skips; as root a missing requirement fails.
package clustertest
