package runtime

import (
	"fmt"

	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// mountTmpfs mounts a private tmpfs at dir unless one is there already
// (the agent restarted while tasks kept running on it). Not executable,
// no devices, no setuid: it only ever holds data files.
func mountTmpfs(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return err
	}
	if st.Type == unix.TMPFS_MAGIC && isMountPoint(dir) {
		return nil
	}
	if err := unix.Mount("warren-secrets", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700,size=64m"); err != nil {
		return fmt.Errorf("mount tmpfs: %w", err)
	}
	return nil
}

// isMountPoint reports whether dir is on another device than its parent.
func isMountPoint(dir string) bool {
	var a, b unix.Stat_t
	if unix.Stat(dir, &a) != nil || unix.Stat(dir+"/..", &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

// sameOwner reports whether p already has the owner and mode.
func sameOwner(p string, uid, gid uint32, mode fs.FileMode) bool {
	var st unix.Stat_t
	if unix.Stat(p, &st) != nil {
		return false
	}
	return st.Uid == uid && st.Gid == gid && st.Mode&0o777 == uint32(mode)
}

// Unmount removes the tmpfs (node leave, tests).
func (s *SecretFS) Unmount() error { return UnmountSecretFS(s.root) }

// UnmountSecretFS detaches the secret tmpfs at root, if one is mounted
// there, and removes the directory (cluster leave).
func UnmountSecretFS(root string) error {
	if isMountPoint(root) {
		if err := unix.Unmount(root, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount secret tmpfs %s: %w", root, err)
		}
	}
	if err := os.RemoveAll(root); err != nil {
		return fmt.Errorf("remove %s: %w", root, err)
	}
	return nil
}
