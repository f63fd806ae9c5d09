package controlplane_test

import (
	"os/exec"
	"strings"
	"testing"
)

// forbidden lists import-path prefixes the control plane must never reach,
// directly or transitively. Intent flows down from the control plane to the
// node; kernel- and runtime-facing code lives below it.
var forbidden = []string{
	"github.com/warrenhq/warren/dataplane",
	"github.com/warrenhq/warren/runtime",
	"github.com/warrenhq/warren/cni",
	"github.com/cilium/ebpf",
	"github.com/containerd/",
	"github.com/vishvananda/netlink",
	"github.com/vishvananda/netns",
	"golang.zx2c4.com/wireguard",
	"github.com/containernetworking/",
}

func TestControlPlaneImportsNoKernelCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-test", "-f", "{{.ImportPath}} {{join .Deps \" \"}}", "github.com/warrenhq/warren/controlplane/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || !strings.HasPrefix(fields[0], "github.com/warrenhq/warren/controlplane") {
			continue
		}
		checked++
		for _, dep := range fields[1:] {
			for _, bad := range forbidden {
				if strings.HasPrefix(dep, bad) {
					t.Errorf("%s depends on %s: the control plane must not import kernel- or runtime-facing code", fields[0], dep)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("go list returned no control-plane packages: the rule checked nothing")
	}
}

// TestForbiddenListCatchesViolation proves the matcher is not vacuous: a
// dependency list that reaches a forbidden package is flagged.
func TestForbiddenListCatchesViolation(t *testing.T) {
	for _, dep := range []string{"github.com/cilium/ebpf/link", "github.com/warrenhq/warren/dataplane/ebpf", "github.com/containerd/containerd/v2/client"} {
		hit := false
		for _, bad := range forbidden {
			if strings.HasPrefix(dep, bad) {
				hit = true
			}
		}
		if !hit {
			t.Errorf("%s is not caught by the forbidden list", dep)
		}
	}
}
