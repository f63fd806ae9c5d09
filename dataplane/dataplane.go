package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"go.uber.org/zap"
)

// Options configures New.
type Options struct {
	// Mode is "ebpf", "proxy" or "auto" (the default): auto tries eBPF and
	// falls back to the proxy when the host lacks support.
	Mode string
	// CgroupPath is the cgroup v2 directory whose processes (the node's
	// containers) get service load balancing.
	CgroupPath string
	// AttachHostRoot also attaches to the host's root cgroup v2 so that host
	// processes reach VIPs and published ports on localhost.
	AttachHostRoot bool
	// PinDir is the bpffs directory for this node's maps and links, e.g.
	// /sys/fs/bpf/warren/<node>. Nodes sharing a machine need distinct dirs.
	PinDir string
	// ProxyInterface is the dummy interface the proxy puts VIPs on.
	ProxyInterface string
	// HostRootCgroup overrides where the host's root cgroup v2 is found;
	// empty means it is looked up in /proc/self/mountinfo.
	HostRootCgroup string
	Logger         *zap.Logger

	// NodeportInterface turns on the routing mesh (eBPF only): published
	// ports answer on this uplink to other hosts, balanced over the same
	// slot tables. Empty leaves it off (and removes it if an earlier agent
	// attached it). The name is resolved in the caller's network namespace.
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

var fallbackOnce sync.Once

// New returns the Dataplane the options ask for.
func New(opts Options) (Dataplane, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	switch opts.Mode {
	case "ebpf":
		return newEBPF(opts)
	case "proxy":
		return newProxy(opts)
	case "", "auto":
		d, err := newEBPF(opts)
		if errors.Is(err, ErrNotSupported) {
			fallbackOnce.Do(func() {
				opts.Logger.Warn("eBPF service dataplane not supported, using the userspace proxy", zap.Error(err))
			})
			return newProxy(opts)
		}
		return d, err
	}
	return nil, fmt.Errorf("dataplane mode %q: want ebpf, proxy or auto", opts.Mode)
}

// NotSupportedError says which requirement is missing.
type NotSupportedError struct {
	What string
	Err  error
}

func (e *NotSupportedError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("dataplane: %s not supported: %v", e.What, e.Err)
	}
	return fmt.Sprintf("dataplane: %s not supported", e.What)
}

func (e *NotSupportedError) Unwrap() []error { return []error{ErrNotSupported, e.Err} }
