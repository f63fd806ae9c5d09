package ktest

import "syscall"

// detachUnmount lazily unmounts path (a rootfs left by a killed shim).
func detachUnmount(path string) { _ = syscall.Unmount(path, syscall.MNT_DETACH) }
