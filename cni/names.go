package cni

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/netip"
)

// hostVethName derives the host end's name from the attachment so DEL and
// CHECK find it without state, and a repeated ADD replaces rather than leaks it.
func hostVethName(containerID, ifName string) string {
	h := sha256.Sum256([]byte(containerID + "\x00" + ifName))
	return defaultIfPrefix + hex.EncodeToString(h[:])[:11]
}

// BridgeMAC is the node bridge's own address, derived from the bridge name
// and the node's subnet (one per node in a cluster). Without one Linux
// gives a bridge the lowest MAC among its ports and changes it when that
// port goes: every container on the node then keeps a stale gateway MAC in
// its neighbour table until it expires. The address is locally
// administered and unicast.
func BridgeMAC(bridge string, subnet netip.Prefix) net.HardwareAddr {
	h := sha256.Sum256([]byte("warren-bridge\x00" + bridge + "\x00" + subnet.Masked().String()))
	mac := net.HardwareAddr(h[:6])
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}
