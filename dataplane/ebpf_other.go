//go:build !linux

package dataplane

import "runtime"

func newEBPF(Options) (Dataplane, error) {
	return nil, &NotSupportedError{What: "eBPF on " + runtime.GOOS}
}

// Unpin removes a node's pinned maps and links; there are none off Linux.
func Unpin(string) error { return nil }
