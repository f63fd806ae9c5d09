package nodenet

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	cnitypes "github.com/containernetworking/cni/pkg/types"

	"github.com/warrenhq/warren/cni"
	"github.com/warrenhq/warren/controlplane/api"
)

// Gateway is the node's own address in its pod subnet: the bridge, the DNS
// server and the mesh endpoint of the subnet all use it.
func Gateway(n api.ClusterNetwork) (netip.Addr, error) {
	subnet, err := netip.ParsePrefix(n.Subnet)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("this node has no pod subnet (%q): %w", n.Subnet, err)
	}
	return subnet.Addr().Next(), nil
}

// CNIConf is the network every task of this node is attached to. Its IPAM
// state lives under dataDir so that several nodes on one machine stay apart.
func CNIConf(n api.ClusterNetwork, bridge, dataDir string) (cni.NetConf, error) {
	subnet, err := netip.ParsePrefix(n.Subnet)
	if err != nil {
		return cni.NetConf{}, fmt.Errorf("this node has no pod subnet (%q): %w", n.Subnet, err)
	}
	return cni.NetConf{
		Name: "warren", Bridge: bridge, Subnet: subnet.String(),
		PodCIDR: n.PodCIDR, ServiceCIDR: n.ServiceCIDR,
		DataDir: filepath.Join(dataDir, "cni", "ipam"),
		DNS:     cniDNS(subnet.Addr().Next(), n.Domain),
	}, nil
}

func cniDNS(gateway netip.Addr, domain string) (d cnitypes.DNS) {
	d.Nameservers = []string{gateway.String()}
	if domain != "" {
		d.Search = []string{domain}
	}
	return d
}

// ResolvConf points tasks at this node's DNS server. ndots:1 lets a bare
// service name be tried as is before the search domain.
func ResolvConf(gateway netip.Addr, domain string) string {
	s := "nameserver " + gateway.String() + "\n"
	if domain != "" {
		s += "search " + domain + "\n"
	}
	return s + "options ndots:1\n"
}

// CNIOptions say where this node's CNI plugin and configuration live.
type CNIOptions struct {
	DataDir string
	Bridge  string
	// Plugin is the binary installed as warren-cni (this executable).
	Plugin  string
	Network api.ClusterNetwork
}

// CNI is this node's prepared task network.
type CNI struct {
	// ResolvConf is the resolv.conf every task gets.
	ResolvConf string
	Gateway    netip.Addr
	client     *cni.Client
}

// SetupCNI installs the plugin, writes a conflist per node (so several nodes
// on one machine stay apart), prepares the node's bridge and writes the
// tasks' resolv.conf.
func SetupCNI(o CNIOptions) (*CNI, error) {
	gateway, err := Gateway(o.Network)
	if err != nil {
		return nil, err
	}
	cniBin := filepath.Join(o.DataDir, "cni", "bin")
	cniConf := filepath.Join(o.DataDir, "cni", "net.d")
	if err := cni.InstallPlugin(cniBin, o.Plugin); err != nil {
		return nil, err
	}
	netConf, err := CNIConf(o.Network, o.Bridge, o.DataDir)
	if err != nil {
		return nil, err
	}
	if err := cni.WriteConfList(cniConf, netConf); err != nil {
		return nil, err
	}
	if err := cni.PrepareNode(netConf); err != nil {
		return nil, fmt.Errorf("node network: %w", err)
	}
	resolv := filepath.Join(o.DataDir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte(ResolvConf(gateway, o.Network.Domain)), 0o644); err != nil {
		return nil, err
	}
	return &CNI{ResolvConf: resolv, Gateway: gateway, client: cni.NewClient(cniBin, cniConf)}, nil
}

// Attach and Detach make CNI the runtime's network hook.
func (c *CNI) Attach(ctx context.Context, containerID, netnsPath string) (netip.Addr, error) {
	return c.client.Add(ctx, containerID, netnsPath)
}

func (c *CNI) Detach(ctx context.Context, containerID, netnsPath string) error {
	return c.client.Del(ctx, containerID, netnsPath)
}
