//go:build unix

package volume

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// lchown gives to the owner of fi. Without the privilege to do so (tests
// as a user, or a network volume whose server maps every file to its login
// user) the copy keeps the owner it got rather than failing: the content
// matters more than who owns it, and a root agent on a local volume always
// has the privilege.
func lchown(to string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	err := os.Lchown(to, int(st.Uid), int(st.Gid))
	if errors.Is(err, fs.ErrPermission) {
		return nil
	}
	return err
}
