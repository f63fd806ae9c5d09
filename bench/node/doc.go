// Package node measures what Warren costs on a node that runs tasks: the
// resident memory of every Warren process on the machine (the daemon, its
// WireGuard helper, any per-task log process) with 10 and 50 tasks, against
// the same node with none in the same run. It needs root, containerd and
// runc, and runs the real binary (WARREN_BIN) on the demo image
// (WARREN_DEMO_IMAGE), both built by `make build demo-image`.
package node
