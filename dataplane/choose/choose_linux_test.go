package choose_test

import (
	"errors"
	"testing"

	"github.com/warrenhq/warren/dataplane"
	"github.com/warrenhq/warren/dataplane/choose"
)

// A misconfigured eBPF dataplane is an error, not a silent fallback: only a
// host that lacks support selects the proxy. Linux only: elsewhere eBPF is
// unsupported before options are looked at.
func TestChooseAutoKeepsConfigErrors(t *testing.T) {
	d, err := choose.New(choose.Options{Mode: choose.ModeAuto})
	if err == nil || errors.Is(err, dataplane.ErrNotSupported) {
		if d != nil {
			d.Close()
		}
		t.Fatalf("no pin dir or cgroup: err %v, want a configuration error", err)
	}
}
