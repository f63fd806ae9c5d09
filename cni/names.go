package cni

import (
	"crypto/sha256"
	"encoding/hex"
)

// hostVethName derives the host end's name from the attachment so DEL and
// CHECK find it without state, and a repeated ADD replaces rather than leaks it.
func hostVethName(containerID, ifName string) string {
	h := sha256.Sum256([]byte(containerID + "\x00" + ifName))
	return defaultIfPrefix + hex.EncodeToString(h[:])[:11]
}
