package volume

import (
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// isMountpoint reports whether p is the root of a mount: its device differs
// from its parent's. A FUSE mount whose server is gone fails the stat
// (ENOTCONN), which is returned.
func isMountpoint(p string) (bool, error) {
	var st, parent unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return false, fmt.Errorf("stat %s: %w", p, err)
	}
	if err := unix.Stat(filepath.Dir(p), &parent); err != nil {
		return false, fmt.Errorf("stat %s: %w", filepath.Dir(p), err)
	}
	return st.Dev != parent.Dev || st.Ino == parent.Ino, nil
}

// detach unmounts lazily: a mount whose server is unreachable would block
// a plain umount.
func detach(p string) error {
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("unmount %s: %w", p, err)
	}
	return nil
}
