// Package ca owns cluster identity: the cluster certificate authority, node
// and operator certificates that carry a node ID and a role, CSR signing,
// the TLS configurations of the manager port (:2377, HTTPS and raft via ALPN
// "warren-raft"), certificate renewal, join tokens and CA pinning for nodes
// that join.
//
// Principles that shape the API:
//   - Private keys never travel. Nodes make their own key and send a CSR; the
//     CA decides the subject (node ID and role) itself and ignores what the CSR
//     asks for, so a worker cannot talk itself into a manager certificate.
//   - The CA key is stored in raft only encrypted (AES-256-GCM) with a
//     key-encryption key (KEK) that lives in each manager's data directory.
//   - Time and randomness are arguments, so every decision here is testable
//     without a wall clock. (Since Go 1.26 crypto/ecdsa draws its own secure
//     randomness for key generation and signatures and ignores the reader we
//     pass; serial numbers, nonces, KEKs, token secrets and renewal jitter do
//     come from the reader.)
//
// The package depends on the standard library and controlplane/api only. Like
// all of controlplane it must never import kernel- or runtime-facing code
// (dataplane, runtime, cni, cilium/ebpf, containerd, netlink, WireGuard).
package ca
