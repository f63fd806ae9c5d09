//go:build linux

package networktest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/warrenhq/warren/cni"
	"github.com/warrenhq/warren/dataplane/nodedevice"
	"github.com/warrenhq/warren/kernel-tests/ktest"
)

func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == cni.PluginType {
		cni.Main()
		return
	}
	// The node's device process, started by the test binary as the daemon
	// would start warren.
	if nodedevice.IsInvocation(os.Args[1:]) {
		nodedevice.Main(os.Args[1:])
	}
	if os.Getenv(helperEnv) == "mesh" {
		os.Exit(meshHelper())
	}
	os.Exit(m.Run())
}

var nsSeq atomic.Int32

// newNetns creates a named network namespace unique to this run (tag + pid +
// sequence) and deletes it when the test ends. It returns the name.
func newNetns(t *testing.T, tag string) string {
	t.Helper()
	name := fmt.Sprintf("wt-%s-%d-%d", tag, os.Getpid(), nsSeq.Add(1))
	ktest.Run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { ktest.RunQuiet("ip", "netns", "del", name) })
	ktest.Run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

func nsPath(name string) string { return "/run/netns/" + name }

// inNS runs a command inside a namespace with nsenter so it sees the real /sys.
func inNS(t *testing.T, ns string, args ...string) string {
	t.Helper()
	return ktest.Run(t, "nsenter", append([]string{"--net=" + nsPath(ns), "--"}, args...)...)
}

// shortTag makes interface names unique per run while fitting in 15 bytes.
func shortTag(prefix string) string {
	s := fmt.Sprintf("%s%d%d", prefix, os.Getpid()%100000, nsSeq.Add(1))
	if len(s) > 15 {
		s = s[:15]
	}
	return strings.ToLower(s)
}
