//go:build linux

package runtimetest

import (
	"os"
	"testing"

	ctrd "github.com/warrenhq/warren/runtime/containerd"
)

// TestMain lets the shim run this test binary as the task logger, the way
// it runs the warren binary in production.
func TestMain(m *testing.M) {
	if ctrd.IsLoggerInvocation(os.Args[1:]) {
		ctrd.LoggerMain()
	}
	os.Exit(m.Run())
}
