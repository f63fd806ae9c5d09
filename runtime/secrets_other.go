//go:build !linux

package runtime

import (
	"errors"
	"io/fs"
	"os"
)

// errNoTmpfs: without a tmpfs the values would land on a disk.
var errNoTmpfs = errors.New("secrets need a Linux tmpfs: not supported on this OS")

func mountTmpfs(string) error { return errNoTmpfs }

func sameOwner(p string, _, _ uint32, mode fs.FileMode) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().Perm() == mode
}

// Unmount is a no-op where no tmpfs was mounted.
func (s *SecretFS) Unmount() error { return nil }

// UnmountSecretFS removes the directory; nothing is mounted here.
func UnmountSecretFS(root string) error { return os.RemoveAll(root) }
