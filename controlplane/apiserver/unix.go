//go:build unix

package apiserver

import (
	"net"
	"syscall"
)

// listenUnixPrivate binds with a umask that leaves the socket accessible to
// its owner only. The umask is process-wide, which is acceptable once at
// start-up.
func listenUnixPrivate(path string) (net.Listener, error) {
	old := syscall.Umask(0o177)
	defer syscall.Umask(old)
	return net.Listen("unix", path)
}
