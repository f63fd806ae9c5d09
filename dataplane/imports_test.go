package dataplane_test

import (
	"os/exec"
	"strings"
	"testing"
)

// contract are the packages the package doc calls the contract: what every
// implementation and the agent build on, so they must build (and test)
// anywhere without reaching the kernel.
var contract = []string{
	"github.com/warrenhq/warren/dataplane",
	"github.com/warrenhq/warren/dataplane/fake",
	"github.com/warrenhq/warren/dataplane/conformance",
}

// forbidden lists import-path prefixes the contract must never reach,
// directly or transitively: the implementations and what they use to reach
// the kernel, and the layers above and beside the dataplane.
var forbidden = []string{
	"github.com/cilium/ebpf",
	"github.com/vishvananda/netlink",
	"github.com/vishvananda/netns",
	"github.com/warrenhq/warren/dataplane/ebpf",
	"github.com/warrenhq/warren/dataplane/proxy",
	"github.com/warrenhq/warren/dataplane/choose",
	"github.com/warrenhq/warren/controlplane",
	"github.com/warrenhq/warren/runtime",
	"github.com/warrenhq/warren/cni",
	"github.com/containerd/",
}

func TestContractImportsNoImplementation(t *testing.T) {
	args := append([]string{"list", "-deps", "-test", "-f", "{{.ImportPath}} {{join .Deps \" \"}}"}, contract...)
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	checked := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || !isContract(fields[0]) {
			continue
		}
		checked[fields[0]] = true
		for _, dep := range fields[1:] {
			if bad := forbiddenPrefix(dep); bad != "" {
				t.Errorf("%s depends on %s: the dataplane contract must not import %s", fields[0], dep, bad)
			}
		}
	}
	for _, p := range contract {
		if !checked[p] {
			t.Errorf("go list did not report %s: the rule checked nothing for it", p)
		}
	}
}

// TestFakeAndConformanceImportOnlyContract checks what their package docs
// promise: they import only dataplane and the standard library, so a test
// of the agent pulls in nothing else.
func TestFakeAndConformanceImportOnlyContract(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", contract[1], contract[2]).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("go list reported %d packages, want 2:\n%s", len(lines), out)
	}
	for _, line := range lines {
		fields := strings.Fields(line)
		for _, imp := range fields[1:] {
			if imp != contract[0] && !standard(imp) {
				t.Errorf("%s imports %s: it may import only dataplane and the standard library", fields[0], imp)
			}
		}
	}
}

// TestProxyImportsNoEBPF checks the proxy package doc: the fallback for
// hosts without eBPF builds without the eBPF implementation or its library.
func TestProxyImportsNoEBPF(t *testing.T) {
	const pkg = "github.com/warrenhq/warren/dataplane/proxy"
	out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 || deps[len(deps)-1] != pkg {
		t.Fatalf("go list -deps %s did not end with the package itself:\n%s", pkg, out)
	}
	for _, dep := range deps {
		for _, bad := range []string{"github.com/cilium/ebpf", "github.com/warrenhq/warren/dataplane/ebpf", "github.com/warrenhq/warren/dataplane/choose"} {
			if strings.HasPrefix(dep, bad) {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
}

// TestForbiddenListCatchesViolation proves the matchers are not vacuous.
func TestForbiddenListCatchesViolation(t *testing.T) {
	for _, dep := range []string{"github.com/cilium/ebpf/link", "github.com/warrenhq/warren/dataplane/ebpf",
		"github.com/warrenhq/warren/dataplane/proxy", "github.com/vishvananda/netlink/nl"} {
		if forbiddenPrefix(dep) == "" {
			t.Errorf("%s is not caught by the forbidden list", dep)
		}
	}
	for _, dep := range []string{"github.com/warrenhq/warren/dataplane", "github.com/prometheus/client_golang/prometheus"} {
		if bad := forbiddenPrefix(dep); bad != "" {
			t.Errorf("%s is caught by %s", dep, bad)
		}
	}
	if standard("github.com/prometheus/client_golang/prometheus") || !standard("net/netip") {
		t.Error("standard misclassifies import paths")
	}
}

func isContract(pkg string) bool {
	for _, p := range contract {
		// With -test, go list also reports the package compiled with its
		// tests ("p [p.test]", whose first word is p), its external tests
		// (p_test) and the test binary (p.test): their deps count too.
		if pkg == p || pkg == p+"_test" || pkg == p+".test" {
			return true
		}
	}
	return false
}

func forbiddenPrefix(dep string) string {
	for _, bad := range forbidden {
		if strings.HasPrefix(dep, bad) {
			return bad
		}
	}
	return ""
}

// standard reports whether an import path is in the standard library,
// whose paths have no dot in their first element.
func standard(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}
