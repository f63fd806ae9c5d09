//go:build !linux

package ktest

import "syscall"

func detachUnmount(path string) { _ = syscall.Unmount(path, 0) }
