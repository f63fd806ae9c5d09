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
