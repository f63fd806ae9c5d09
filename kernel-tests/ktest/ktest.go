// Package ktest holds the rules every root test in kernel-tests/ follows.
//
// Without root a kernel test skips. As root, a missing requirement (a binary,
// a kernel feature, a filesystem) is a failure, not a skip: a broken feature
// must not hide behind a skip on the machines that are meant to run it.
package ktest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Root skips the test unless it runs as root.
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test: needs root (run `make kernel-test` as root)")
	}
}

// Binary fails the test when a program it needs is not on PATH and returns its path.
func Binary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("kernel test requirement missing: %s not on PATH (install it; .ci/run does)", name)
	}
	return p
}

// File fails the test when path does not exist.
func File(t testing.TB, path, why string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("kernel test requirement missing: %s (%s): %v", path, why, err)
	}
}

// Run runs a command and fails the test with its output if it fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// RunQuiet runs a command and ignores failure (clean-up paths).
func RunQuiet(name string, args ...string) {
	_ = exec.Command(name, args...).Run()
}
