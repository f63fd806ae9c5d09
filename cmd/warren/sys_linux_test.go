package main

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCloseInheritedOnExec: a descriptor inherited without close-on-exec
// (a test harness's lock, a supervisor's pipe) gets it, so the device
// processes the daemon starts do not hold it.
func TestCloseInheritedOnExec(t *testing.T) {
	fd, err := unix.Open(filepath.Join(t.TempDir(), "lock"), unix.O_CREAT|unix.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	flags := func() int {
		f, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	if flags()&unix.FD_CLOEXEC != 0 {
		t.Fatal("setup: descriptor already close-on-exec")
	}
	closeInheritedOnExec()
	if flags()&unix.FD_CLOEXEC == 0 {
		t.Error("inherited descriptor not close-on-exec")
	}
	if _, err := os.Stat("/proc/self/fd/0"); err != nil {
		t.Errorf("stdin gone: %v", err)
	}
}
