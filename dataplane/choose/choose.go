// Package choose picks a node's service dataplane: eBPF where the host
// supports it, the userspace proxy where it does not (macOS, WSL2, kernels
// without cgroup v2 or BTF), as the --dataplane flag asks.
//
// It owns only that choice; the implementations are dataplane/ebpf and
// dataplane/proxy, and the contract they share is dataplane.
package choose

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/dataplane"
	"github.com/warrenhq/warren/dataplane/ebpf"
	"github.com/warrenhq/warren/dataplane/proxy"
)

// The values of Options.Mode (the --dataplane flag).
const (
	ModeAuto  = "auto" // eBPF, falling back to the proxy on ErrNotSupported
	ModeEBPF  = "ebpf"
	ModeProxy = "proxy"
)

// Options configures New. The eBPF fields are those of ebpf.Options, where
// they are documented.
type Options struct {
	// Mode is ModeEBPF, ModeProxy or ModeAuto; empty means ModeAuto.
	Mode string
	// ProxyInterface is the dummy interface the proxy puts VIPs on.
	ProxyInterface string
	Logger         *zap.Logger

	CgroupPath        string
	AttachHostRoot    bool
	PinDir            string
	HostRootCgroup    string
	NodeportInterface string // the routing mesh; eBPF only
	NodeAddrs         []netip.Addr
	NodeSubnet        netip.Prefix
	MeshInterface     string
	MeshAddr          netip.Addr
}

func (o Options) ebpf() ebpf.Options {
	return ebpf.Options{
		CgroupPath: o.CgroupPath, AttachHostRoot: o.AttachHostRoot, PinDir: o.PinDir,
		HostRootCgroup: o.HostRootCgroup, Logger: o.Logger,
		NodeportInterface: o.NodeportInterface, NodeAddrs: o.NodeAddrs, NodeSubnet: o.NodeSubnet,
		MeshInterface: o.MeshInterface, MeshAddr: o.MeshAddr,
	}
}

var fallbackOnce sync.Once

// New returns the Dataplane the options ask for.
func New(opts Options) (dataplane.Dataplane, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	newProxy := func() (dataplane.Dataplane, error) { return proxy.NewDataplane(opts.ProxyInterface), nil }
	switch opts.Mode {
	case ModeEBPF:
		return ebpf.New(opts.ebpf())
	case ModeProxy:
		return newProxy()
	case "", ModeAuto:
		d, err := ebpf.New(opts.ebpf())
		if errors.Is(err, dataplane.ErrNotSupported) {
			fallbackOnce.Do(func() {
				opts.Logger.Warn("eBPF service dataplane not supported, using the userspace proxy", zap.Error(err))
			})
			return newProxy()
		}
		return d, err
	}
	return nil, fmt.Errorf("dataplane mode %q: want %s, %s or %s", opts.Mode, ModeEBPF, ModeProxy, ModeAuto)
}
