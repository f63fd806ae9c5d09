// Package apiserver is the manager's HTTP/JSON API (v1). It owns the route
// table, authorisation by the caller's certificate identity, forwarding of
// writes (and linearizable reads) from followers to the leader, validation of
// user specs, the join and certificate-renewal flows, the node agent's routes
// (registration, assignments as a blocking query, status reports) and the
// image blob store.
//
// It talks to the rest of the manager only through Backend, which the manager
// package composes from raftnode, store and ca. It must not import the
// manager, the orchestrator or anything outside controlplane; and like all of
// controlplane, never dataplane, runtime, cni, cilium/ebpf, containerd,
// netlink or WireGuard.
//
// Every route is declared once, in routes(); the authorisation test walks
// that table, so a route cannot be added without saying who may call it.
package apiserver
