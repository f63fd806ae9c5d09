package ebpf

import (
	"net/netip"

	"go.uber.org/zap"
)

// Options configures New.
type Options struct {
	// CgroupPath is the cgroup v2 directory whose processes (the node's
	// containers) get service load balancing.
	CgroupPath string
	// AttachHostRoot attaches at the host's root cgroup v2 instead, so that
	// host processes reach VIPs and published ports on localhost too; the
	// node's containers, below the root, inherit the programs (attaching at
	// both would run every program twice per connect).
	AttachHostRoot bool
	// PinDir is the bpffs directory for this node's maps and links, e.g.
	// /sys/fs/bpf/warren/<node>. Nodes sharing a machine need distinct dirs.
	PinDir string
	// HostRootCgroup overrides where the host's root cgroup v2 is found;
	// empty means it is looked up in /proc/self/mountinfo.
	HostRootCgroup string
	Logger         *zap.Logger

	// NodeportInterface turns on the routing mesh: published ports answer
	// on this uplink to other hosts, balanced over the same slot tables.
	// Empty leaves it off (and removes it if an earlier agent attached it).
	// The name is resolved in the caller's network namespace.
	NodeportInterface string
	// NodeAddrs are the node's addresses on which published ports answer
	// other hosts; empty means the IPv4 addresses NodeportInterface has when
	// New runs.
	NodeAddrs []netip.Addr
	// NodeSubnet is the node's task subnet: backends inside it are local and
	// see the client's real address. The zero prefix makes every backend
	// local.
	NodeSubnet netip.Prefix
	// MeshInterface and MeshAddr reach backends outside NodeSubnet: such
	// flows are SNATed to MeshAddr (so replies return through this node)
	// and sent into MeshInterface (WireGuard). Empty MeshInterface treats
	// every backend as local.
	MeshInterface string
	MeshAddr      netip.Addr
}
