//go:build !linux

package dns

import (
	"fmt"
	"log"
	"syscall"

	"go.uber.org/zap"
)

func reusePort(_, _ string, _ syscall.RawConn) error { return nil }

// DevicePart is Linux only.
type DevicePart struct{}

// StartDevice is Linux only.
func StartDevice(DeviceOptions, DeviceHost, *log.Logger) (*DevicePart, error) {
	return nil, fmt.Errorf("%w on this system", ErrDeviceUnsupported)
}

// Ended never delivers off Linux.
func (*DevicePart) Ended() <-chan Ended { return nil }

// Device is Linux only; OpenDevice always fails elsewhere.
type Device struct{}

// OpenDevice reports ErrDeviceUnsupported: DNS is served in process.
func OpenDevice(DeviceOptions, *zap.Logger) (*Device, error) {
	return nil, fmt.Errorf("%w on this system", ErrDeviceUnsupported)
}

func (*Device) Set(*Config) error { return ErrDeviceUnsupported }
func (*Device) Start() error      { return ErrDeviceUnsupported }
func (*Device) Close() error      { return nil }

// DeviceStatus is what a device says of itself (Linux only).
type DeviceStatus struct {
	Pid        int
	ThisBinary bool
	WireGuard  string
}

func (*Device) Status() (DeviceStatus, bool)    { return DeviceStatus{}, false }
func (*Device) HostWireGuard(string, int) error { return ErrDeviceUnsupported }
func (*Device) Spawn([]string) error            { return ErrDeviceUnsupported }

// StopDevice has nothing to stop here.
func StopDevice(string) (bool, error) { return false, nil }
