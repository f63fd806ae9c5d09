//go:build !unix

package apiserver

import "net"

// listenUnixPrivate has no umask to set here; ListenUnix still chmods the
// socket to 0600 right after binding.
func listenUnixPrivate(path string) (net.Listener, error) { return net.Listen("unix", path) }
