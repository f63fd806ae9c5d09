// Package ipam hands out container addresses from one node's pod subnet.
//
// The core (Pool) is pure: it holds the leases of a subnet and decides which
// address an owner gets, so it is table-tested without a file system. Store
// persists a Pool under the CNI data directory and serialises every change
// with an flock, because a container runtime may run many warren-cni
// processes at the same time.
//
// It must not import netlink, libcni or anything outside the standard library
// and golang.org/x/sys: it is called from the plugin and from tests alike.
package ipam
