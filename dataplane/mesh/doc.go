// Package mesh owns a node's WireGuard interface: its key pair, its peers
// (one per other node, allowed to send that node's pod /24) and the routes
// that send peer subnets through it.
//
// Two implementations sit behind Mesh: the kernel's WireGuard, driven by
// netlink and wgctrl, and wireguard-go in-process on a TUN device with GSO/GRO
// offload, for hosts without the module. Options.Mode "auto" probes by trying
// to create a wireguard link and falls back on ErrNotSupported.
//
// Set is declarative: it takes the whole desired peer set, diffs it against
// what was applied (pure code in diff.go) and changes only what differs,
// never recreating the device.
//
// It must not import controlplane, runtime or cni; the agent converts its
// assignments into a Config.
package mesh
