//go:build !linux

package volume

import (
	"fmt"
	"os"
)

func isMountpoint(p string) (bool, error) {
	if _, err := os.Stat(p); err != nil {
		return false, err
	}
	return false, fmt.Errorf("mount points: %w", ErrUnsupported)
}

func detach(string) error { return nil }
