// Package volume runs volumes on a node: the Driver interface, the local
// driver (a directory under the node's data dir), out-of-process plugins
// (an executable per driver speaking a JSON contract on stdin/stdout, like
// CNI; see docs/volumes.md), the sshfs plugin this binary ships, and the
// Manager the containerd executor calls around each task.
//
// It may import controlplane/api, zap and x/sys; never containerd, cni,
// dataplane or the rest of the control plane.
package volume
