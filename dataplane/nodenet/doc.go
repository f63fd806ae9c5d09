// Package nodenet is the node's network: it turns the assignments a node
// receives (api.Assignments) into the configurations of the kernel-facing
// parts — the WireGuard mesh (mesh.Config), the service table
// (dataplane.Config), service DNS (dns.Config) and the CNI network
// (cni.NetConf, resolv.conf) — and owns the sink that applies them.
//
// The conversions (convert.go, cni.go, capacity.go) are pure: no I/O, no
// clock, golden-tested without root. The I/O lives in the Sink (sink.go),
// the CNI setup (cni.go: SetupCNI) and the task traffic counters
// (traffic.go); every call to a dataplane constructor is in kernel.go, so a
// move of those constructors changes one file.
//
// It may import controlplane/api (types only), dataplane and its mesh and
// dns packages, and cni. Nothing but cmd/warren may import it: it is where
// the control plane's intent meets this node's kernel, and a test in
// cmd/warren enforces both directions.
package nodenet
