//go:build !linux

package nodedevice

import (
	"errors"
	"fmt"
	"os"
)

// Main exists on Linux only.
func Main([]string) {
	fmt.Fprintln(os.Stderr, "warren: the node's device process runs on Linux only")
	os.Exit(2)
}

func spawnWireGuard([]string, string) error {
	return errors.New("the node's device process runs on Linux only")
}
