package runtime_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports enforces the package docs: the core runtime package stays
// free of containerd and of the other kernel-facing areas, and ociimage and
// fake stay small.
func TestImports(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not on PATH")
	}
	for pkg, banned := range map[string][]string{
		"github.com/warrenhq/warren/runtime":            {"github.com/containerd/", "/warren/cni", "/warren/dataplane", "/controlplane/store", "cilium/ebpf"},
		"github.com/warrenhq/warren/runtime/fake":       {"github.com/containerd/", "/warren/cni", "/warren/dataplane"},
		"github.com/warrenhq/warren/runtime/ociimage":   {"github.com/containerd/", "github.com/warrenhq/warren/controlplane", "github.com/warrenhq/warren/runtime"},
		"github.com/warrenhq/warren/runtime/containerd": {"/warren/cni", "/warren/dataplane"},
		"github.com/warrenhq/warren/runtime/volume":     {"github.com/containerd/", "/warren/cni", "/warren/dataplane", "/controlplane/store"},
	} {
		out, err := exec.Command(goBin, "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, b := range banned {
				if strings.Contains(dep, b) && dep != pkg {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}
