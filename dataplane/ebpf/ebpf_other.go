//go:build !linux

package ebpf

import (
	"runtime"

	"github.com/warrenhq/warren/dataplane"
)

// New fails with ErrNotSupported off Linux.
func New(Options) (dataplane.Dataplane, error) {
	return nil, &dataplane.NotSupportedError{What: "eBPF on " + runtime.GOOS}
}

// Unpin removes a node's pinned maps and links; there are none off Linux.
func Unpin(string) error { return nil }
