//go:build !linux

package mesh

import (
	"fmt"
	"os"
)

// DeviceMain exists on Linux only.
func DeviceMain([]string) {
	fmt.Fprintln(os.Stderr, "warren: the WireGuard device process runs on Linux only")
	os.Exit(2)
}
