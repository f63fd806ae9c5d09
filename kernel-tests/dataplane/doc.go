// Package dataplanetest runs the dataplane against a real kernel: the eBPF
// socket load balancer attached to test cgroups, and the userspace proxy with
// VIPs on a dummy interface. Root only (see kernel-tests/ktest).
package dataplanetest
