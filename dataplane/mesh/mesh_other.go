//go:build !linux

package mesh

import "fmt"

// New fails off Linux: Warren's mesh needs netlink and TUN.
func New(opts Options) (Mesh, error) {
	return nil, fmt.Errorf("mesh: %w on this OS", ErrNotSupported)
}
