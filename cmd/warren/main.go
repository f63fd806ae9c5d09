// Command warren is Warren's one binary: the CLI, the manager and node daemon,
// and — when invoked as warren-cni — the CNI plugin containerd and the agent
// call. `wrn` is the same program under a shorter name.
//
// This is the only package where concrete implementations (raft, containerd,
// eBPF, WireGuard, CNI) meet; everything below it talks through interfaces.
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/warrenhq/warren/dataplane/nodedevice"
	rtc "github.com/warrenhq/warren/runtime/containerd"
	"github.com/warrenhq/warren/runtime/volume"
)

func main() {
	closeInheritedOnExec()
	// The containerd shim runs this binary as each task's log driver.
	if rtc.IsLoggerInvocation(os.Args[1:]) {
		rtc.LoggerMain()
	}
	// The node's userspace WireGuard device and its DNS server run in a
	// process of their own, so that traffic between nodes and tasks'
	// lookups survive a restart of warren.
	if nodedevice.IsInvocation(os.Args[1:]) {
		nodedevice.Main(os.Args[1:])
	}
	if err := run(os.Args, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(exitCode(err))
	}
}

// run dispatches on the name the binary was invoked as.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	name := strings.TrimSuffix(filepath.Base(args[0]), ".exe")
	switch name {
	case "warren-cni":
		return runCNI()
	case volume.SSHFSPlugin:
		if code := volume.SSHFSMain(args, stdin, stdout, stderr); code != 0 {
			return &exitError{code: code, err: fmt.Errorf("%s %s failed; the reason is in its answer on stdout", volume.SSHFSPlugin, strings.Join(args[1:2], ""))}
		}
		return nil
	default: // warren, wrn, or anything else (go run, tests)
		cmd := newRootCmd(stdin, stdout, stderr)
		cmd.SetArgs(args[1:])
		return cmd.Execute()
	}
}

// exitError carries a specific process exit code (e.g. a service that did not converge).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	if e, ok := err.(*exitError); ok {
		return e.code
	}
	return 1
}
