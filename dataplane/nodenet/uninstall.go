package nodenet

import "github.com/warrenhq/warren/controlplane/api"

// Installed names what a node created on this machine outside its data
// directory, for Uninstall.
type Installed struct {
	NodeID  string
	Network api.ClusterNetwork
	Bridge  string
	WGIface string
	DataDir string // the DNS device's directory is under it
}

// ProxyInterface is the dummy interface the userspace proxy puts VIPs on.
const ProxyInterface = "warren-vip"
