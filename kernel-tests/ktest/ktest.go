// Package ktest holds the rules every root test in kernel-tests/ follows.
//
// Without root a kernel test skips. As root, a missing requirement (a binary,
// a kernel feature, a filesystem) is a failure, not a skip: a broken feature
// must not hide behind a skip on the machines that are meant to run it.
package ktest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warrenhq/warren/runtime/containerd"
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

// Cgroup2 returns where this host mounts the cgroup2 hierarchy, found the
// way the product finds it (runtime/containerd.FindCgroup2Mount reads
// /proc/self/mountinfo): /sys/fs/cgroup on a pure v2 host,
// /sys/fs/cgroup/unified on a hybrid one. A host without cgroup2 fails the
// test: the eBPF dataplane and the task cgroups need it.
func Cgroup2(t testing.TB) string {
	t.Helper()
	p, err := containerd.FindCgroup2Mount()
	if err != nil {
		t.Fatalf("kernel test requirement missing: cgroup v2 hierarchy: %v", err)
	}
	File(t, filepath.Join(p, "cgroup.procs"), "cgroup v2 hierarchy")
	return p
}

// Cgroup2Unified reports whether the cgroup2 hierarchy is the only one
// (pure v2): resource limits are then in its files, not in v1 controllers.
func Cgroup2Unified(t testing.TB) bool {
	return Cgroup2(t) == "/sys/fs/cgroup"
}

// OwnCgroup2 returns the cgroup2 directory this process is in. Tests that
// move themselves into a cgroup call it first (at package init) to know
// where to go back to.
func OwnCgroup2() (string, error) {
	root, err := containerd.FindCgroup2Mount()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("own cgroup: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			return filepath.Join(root, p), nil
		}
	}
	return "", errors.New("own cgroup: no cgroup v2 entry in /proc/self/cgroup")
}
