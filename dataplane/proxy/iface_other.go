//go:build !linux

package proxy

import (
	"fmt"
	"net/netip"
	"runtime"
)

// EnsureAddrs cannot add VIPs off Linux yet; loopback VIPs need nothing.
func EnsureAddrs(name string, addrs []netip.Addr) error {
	for _, a := range addrs {
		if !a.IsLoopback() {
			return fmt.Errorf("proxy VIP %v on %s: adding addresses is not implemented on %s", a, name, runtime.GOOS)
		}
	}
	return nil
}
