package main

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/warrenhq/warren/cni"
)

// runCNI is the warren-cni plugin entry point.
func runCNI() error {
	cni.Main()
	return nil
}

// ensureBPFFS mounts bpffs at /sys/fs/bpf when nothing is mounted there, so
// the dataplane can pin its maps and links across agent restarts.
func ensureBPFFS() error {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[1] == "/sys/fs/bpf" && f[2] == "bpf" {
			return nil
		}
	}
	if err := os.MkdirAll("/sys/fs/bpf", 0o700); err != nil {
		return err
	}
	if err := unix.Mount("bpffs", "/sys/fs/bpf", "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs on /sys/fs/bpf: %w", err)
	}
	return nil
}

// closeInheritedOnExec marks every descriptor this process inherited
// beyond stdio close-on-exec, so that the processes it starts and that
// outlive it (the WireGuard and DNS devices) do not hold its parent's files
// — a lock, a pipe a supervisor waits on — for as long as they run.
func closeInheritedOnExec() {
	_ = unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
}
