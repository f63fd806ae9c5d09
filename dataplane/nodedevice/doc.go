// Package nodedevice is the node's device process: one process of this
// binary that outlives the daemon and serves what must keep working while
// the daemon restarts, crashes or is upgraded — the userspace WireGuard
// device (mesh.ServeDevice), where the kernel has no WireGuard, and the
// DNS device (dns.StartDevice). One process for both, since each Go
// process of this binary costs its runtime and what every dependency's
// init keeps (bench/node).
//
// The two parts start and end apart. The DNS part hands over to a
// successor of another binary (an upgrade) and ends, while the WireGuard
// part of the same process keeps carrying pod traffic: a WireGuard device
// is never replaced. Deleting the interface ends the WireGuard part. The
// process exits when neither part remains, on SIGTERM, and when the node
// leaves (dns.StopDevice). A daemon finds the WireGuard part by its UAPI
// socket and the DNS part by its control socket, which is also how it asks
// a running DNS device to take the WireGuard device on; devices of the
// previous release, one process each, are adopted as they are.
//
// Plan (which process gets the WireGuard device) and the argv are pure;
// the rest starts processes and sockets. Beside controlplane/memlimit (the
// process's own memory) it must not import controlplane, runtime or cni.
package nodedevice
