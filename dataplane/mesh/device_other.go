//go:build !linux

package mesh

import (
	"fmt"
	"log"
)

// ServedDevice exists on Linux only.
type ServedDevice struct{ Name string }

// ServeDevice fails off Linux: the device needs TUN.
func ServeDevice(string, int, *log.Logger) (*ServedDevice, error) {
	return nil, fmt.Errorf("mesh: device: %w on this OS", ErrNotSupported)
}

// Done never closes off Linux.
func (*ServedDevice) Done() <-chan struct{} { return nil }

// Close has nothing to remove off Linux.
func (*ServedDevice) Close() {}

// DeviceAlive is always false off Linux.
func DeviceAlive(string) bool { return false }
