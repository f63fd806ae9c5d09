// Package cni is warren-cni, the CNI plugin that connects a container to its
// node's pod network, and the client the node agent uses to call it.
//
// The plugin (Main) implements CNI 1.x ADD, DEL, CHECK, VERSION and STATUS:
// it keeps a Linux bridge holding the gateway (.1) of the node's /24, gives
// each container a veth pair with eth0 in the container and the host end on
// the bridge, and leases addresses through cni/ipam. Cross-node routing is
// not its business; dataplane/mesh routes peer subnets over WireGuard.
//
// It may import the containernetworking libraries, netlink and cni/ipam; it
// must not import controlplane, runtime or dataplane.
package cni
