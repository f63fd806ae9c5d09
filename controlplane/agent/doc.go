// Package agent is the manager-facing half of the node agent. It runs on
// every node (in the manager's process on managers): it registers the node
// and heartbeats, watches the node's assignments with a blocking query,
// hands tasks to the Executor and the network part of the assignments to
// Network, and sends task status reports back.
//
// It keeps working whatever the managers do. The last assignments, the
// manager addresses and unacknowledged status reports live in a bbolt file
// in the data directory: on start the cached assignments are applied before
// any manager answers, so a node rebooted while cut off brings its tasks
// back, and reports made while cut off are delivered once a manager is
// reachable again. While cut off it also enforces the services' disconnect
// stop-after itself, and on its return it logs and counts what the sync did
// (disconnect.go).
//
// It talks to managers only through the Manager interface (satisfied by
// *client.Client) and to the node only through Executor and Network, which
// it declares. Like all of controlplane it must not import dataplane,
// runtime, cni, cilium/ebpf, containerd, netlink or WireGuard.
package agent
