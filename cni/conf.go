package cni

import (
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/containernetworking/cni/pkg/types"
)

// Names and defaults shared by the plugin, the client and the conflist.
const (
	PluginType      = "warren-cni"
	NetworkName     = "warren"
	ConfListFile    = "10-warren.conflist"
	DefaultBridge   = "warren0"
	DefaultVersion  = "1.1.0"
	DefaultMTU      = 1420 // WireGuard overhead on a 1500-byte underlay
	DefaultDataDir  = "/var/lib/warren/cni"
	DefaultPodCIDR  = "10.42.0.0/16"
	DefaultSvcCIDR  = "10.43.0.0/16"
	defaultIfPrefix = "wrn"
)

// NetConf is the plugin's network configuration, embedded in the conflist
// the agent writes and read back by the plugin from stdin.
type NetConf struct {
	// Not types.PluginConf embedded: its MarshalJSON would be promoted and
	// drop every field below when the agent writes the conflist.
	CNIVersion string    `json:"cniVersion,omitempty"`
	Name       string    `json:"name,omitempty"`
	Type       string    `json:"type,omitempty"`
	DNS        types.DNS `json:"dns,omitempty"`
	// RawPrevResult is set by the runtime for CHECK (and DEL).
	RawPrevResult map[string]any `json:"prevResult,omitempty"`
	// ValidAttachments is set by the runtime for GC.
	ValidAttachments []types.GCAttachment `json:"cni.dev/valid-attachments,omitempty"`

	Bridge      string `json:"bridge,omitempty"`
	Subnet      string `json:"subnet"` // this node's /24, e.g. 10.42.3.0/24
	PodCIDR     string `json:"podCIDR,omitempty"`
	ServiceCIDR string `json:"serviceCIDR,omitempty"`
	MTU         int    `json:"mtu,omitempty"`
	DataDir     string `json:"dataDir,omitempty"`
}

// netConf is a validated NetConf with parsed addresses.
type netConf struct {
	NetConf
	subnet  netip.Prefix
	podCIDR netip.Prefix
	svcCIDR netip.Prefix // invalid when unset
}

// withDefaults fills every empty field with its default.
func (c NetConf) withDefaults() NetConf {
	if c.CNIVersion == "" {
		c.CNIVersion = DefaultVersion
	}
	if c.Name == "" {
		c.Name = NetworkName
	}
	if c.Type == "" {
		c.Type = PluginType
	}
	if c.Bridge == "" {
		c.Bridge = DefaultBridge
	}
	if c.PodCIDR == "" {
		c.PodCIDR = DefaultPodCIDR
	}
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	return c
}

// parseConf decodes and validates the plugin's stdin.
func parseConf(stdin []byte) (*netConf, error) {
	var c NetConf
	if err := json.Unmarshal(stdin, &c); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "decode network config", err.Error())
	}
	return validate(c.withDefaults())
}

func validate(c NetConf) (*netConf, error) {
	bad := func(format string, a ...any) error {
		return types.NewError(types.ErrInvalidNetworkConfig, "invalid network config", fmt.Sprintf(format, a...))
	}
	out := &netConf{NetConf: c}
	var err error
	if out.subnet, err = netip.ParsePrefix(c.Subnet); err != nil {
		return nil, bad("subnet %q: %v", c.Subnet, err)
	}
	if !out.subnet.Addr().Is4() || out.subnet.Bits() > 30 {
		return nil, bad("subnet %s: want an IPv4 prefix of /30 or larger", c.Subnet)
	}
	out.subnet = out.subnet.Masked()
	if out.podCIDR, err = netip.ParsePrefix(c.PodCIDR); err != nil {
		return nil, bad("podCIDR %q: %v", c.PodCIDR, err)
	}
	if !out.podCIDR.Contains(out.subnet.Addr()) || out.podCIDR.Bits() > out.subnet.Bits() {
		return nil, bad("subnet %s is not inside podCIDR %s", out.subnet, out.podCIDR)
	}
	if c.ServiceCIDR != "" {
		if out.svcCIDR, err = netip.ParsePrefix(c.ServiceCIDR); err != nil {
			return nil, bad("serviceCIDR %q: %v", c.ServiceCIDR, err)
		}
		if out.svcCIDR.Overlaps(out.podCIDR) {
			return nil, bad("serviceCIDR %s overlaps podCIDR %s", out.svcCIDR, out.podCIDR)
		}
	}
	if c.MTU < 576 || c.MTU > 65535 {
		return nil, bad("mtu %d out of range", c.MTU)
	}
	if len(c.Bridge) > 15 {
		return nil, bad("bridge name %q longer than 15 bytes", c.Bridge)
	}
	return out, nil
}

// confList renders the conflist the runtime reads.
func confList(c NetConf) ([]byte, error) {
	c = c.withDefaults()
	if _, err := validate(c); err != nil {
		return nil, err
	}
	name, version := c.Name, c.CNIVersion
	plugin := c
	// The list carries name and version; libcni injects them into each
	// plugin's stdin, so they are not repeated inside the plugin entry.
	plugin.Name, plugin.CNIVersion = "", ""
	list := struct {
		CNIVersion string    `json:"cniVersion"`
		Name       string    `json:"name"`
		Plugins    []NetConf `json:"plugins"`
	}{version, name, []NetConf{plugin}}
	return json.MarshalIndent(list, "", "  ")
}
