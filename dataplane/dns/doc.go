// Package dns is the service name server a node runs for its containers.
//
// It answers NAME and NAME.<domain> with the service's VIP, tasks.NAME and
// tasks.NAME.<domain> with the addresses of the service's healthy tasks,
// NXDOMAIN for other names inside the domain, and forwards everything else
// to the upstream resolvers. The table is replaced whole by Set, atomically,
// so a query never sees half an update. A task of a stack also resolves the
// stack's Compose service names (aliases chosen by the querying address).
//
// It must not import controlplane, runtime or cni; the agent converts its
// assignments into a Config.
package dns
