//go:build !linux

package dns

import (
	"fmt"
	"syscall"

	"go.uber.org/zap"
)

func reusePort(_, _ string, _ syscall.RawConn) error { return nil }

// DeviceMain is Linux only.
func DeviceMain([]string) { panic("dns device: linux only") }

// Device is Linux only; OpenDevice always fails elsewhere.
type Device struct{}

// OpenDevice reports ErrDeviceUnsupported: DNS is served in process.
func OpenDevice(DeviceOptions, *zap.Logger) (*Device, error) {
	return nil, fmt.Errorf("%w on this system", ErrDeviceUnsupported)
}

func (*Device) Set(*Config) error { return ErrDeviceUnsupported }
func (*Device) Start() error      { return ErrDeviceUnsupported }
func (*Device) Close() error      { return nil }

// StopDevice has nothing to stop here.
func StopDevice(string) (bool, error) { return false, nil }
