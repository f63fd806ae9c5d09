package scheduler

import (
	"math/rand/v2"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
)

func TestPlatformMatches(t *testing.T) {
	p := func(os, arch, variant string) api.Platform {
		return api.Platform{OS: os, Architecture: arch, Variant: variant}
	}
	for _, tc := range []struct {
		node, img api.Platform
		want      bool
	}{
		{p("linux", "amd64", ""), p("linux", "amd64", ""), true},
		{p("linux", "x86_64", ""), p("linux", "amd64", ""), true},
		{p("linux", "amd64", ""), p("linux", "arm64", ""), false},
		{p("linux", "arm64", ""), p("linux", "arm64", "v8"), true},
		{p("linux", "aarch64", ""), p("linux", "arm64", ""), true},
		{p("linux", "arm", "v7"), p("linux", "arm", "v7"), true},
		{p("linux", "arm", "v7"), p("linux", "arm", "v6"), true},
		{p("linux", "arm", "v6"), p("linux", "arm", "v7"), false},
		{p("linux", "arm", "v7"), p("linux", "arm", ""), true},
		{p("linux", "arm", ""), p("linux", "arm", "v7"), true}, // arm without a variant reports as v7
		{p("linux", "arm64", ""), p("linux", "arm", "v7"), false},
		{p("darwin", "arm64", ""), p("linux", "arm64", ""), false},
		{p("Linux", "AMD64", ""), p("linux", "amd64", ""), true},
	} {
		if got := PlatformMatches(tc.node, tc.img); got != tc.want {
			t.Errorf("node %s image %s: %v, want %v", tc.node, tc.img, got, tc.want)
		}
	}
}

// A pinned image's platforms decide where its tasks may go, and a task no
// node can take says which platform the image lacks.
func TestSchedulePlacesByImagePlatform(t *testing.T) {
	arm := func(n *api.Node) { n.Status.Arch = "arm64" }
	armv7 := func(n *api.Node) { n.Status.Arch, n.Status.Variant = "arm", "v7" }
	nodes := []api.Node{node("a1", 4, 8), node("a2", 4, 8), node("r1", 4, 8, arm), node("v7", 4, 8, armv7)}
	img := func(ps ...api.Platform) func(*api.Task) {
		return func(t *api.Task) {
			t.Spec.Container.Image, t.Spec.Container.ImageDigest = "r/x:1", "sha256:1"
			t.Spec.Container.ImagePlatforms = ps
		}
	}
	amd64 := api.Platform{OS: "linux", Architecture: "amd64"}
	arm64 := api.Platform{OS: "linux", Architecture: "arm64"}
	riscv := api.Platform{OS: "linux", Architecture: "riscv64"}
	for _, tc := range []struct {
		name    string
		plats   []api.Platform
		allowed map[string]bool
		reason  string
	}{
		{"amd64 only", []api.Platform{amd64}, map[string]bool{"a1": true, "a2": true}, ""},
		{"arm64 only", []api.Platform{arm64}, map[string]bool{"r1": true}, ""},
		{"an index of both", []api.Platform{amd64, arm64}, map[string]bool{"a1": true, "a2": true, "r1": true}, ""},
		{"unknown platforms go anywhere", nil, map[string]bool{"a1": true, "a2": true, "r1": true, "v7": true}, ""},
		{"no node has it", []api.Platform{riscv}, nil, "0/4 nodes available: 4 image has no linux/amd64 or linux/arm/v7 or linux/arm64"},
	} {
		var pending []api.Task
		for i := range 8 {
			pending = append(pending, task(string(rune('a'+i)), "s", uint64(i+1), img(tc.plats...)))
		}
		plan := Schedule(nodes, nil, pending, rand.New(rand.NewPCG(1, 2)))
		if tc.reason != "" {
			if len(plan.Unplaced) != len(pending) || plan.Unplaced[0].Reason != tc.reason {
				t.Errorf("%s: unplaced %+v, want every task with %q", tc.name, plan.Unplaced, tc.reason)
			}
			continue
		}
		if len(plan.Placements) != len(pending) {
			t.Errorf("%s: %d placed of %d: %+v", tc.name, len(plan.Placements), len(pending), plan.Unplaced)
		}
		used := map[string]bool{}
		for _, p := range plan.Placements {
			if !tc.allowed[p.NodeID] {
				t.Errorf("%s: task %s on %s", tc.name, p.TaskID, p.NodeID)
			}
			used[p.NodeID] = true
		}
		if len(used) != len(tc.allowed) {
			t.Errorf("%s: spread over %v, want every allowed node %v", tc.name, used, tc.allowed)
		}
	}
}

// The constraint on the platform and the image's platforms are both
// named when a task cannot be placed.
func TestPlatformReasonWithConstraint(t *testing.T) {
	nodes := []api.Node{node("a1", 4, 8), node("r1", 4, 8, func(n *api.Node) { n.Status.Arch = "arm64" })}
	tk := task("t", "s", 1, func(t *api.Task) {
		t.Spec.Placement.Constraints = []string{"node.platform.arch==arm64"}
		t.Spec.Container.ImagePlatforms = []api.Platform{{OS: "linux", Architecture: "amd64"}}
	})
	plan := Schedule(nodes, nil, []api.Task{tk}, rand.New(rand.NewPCG(1, 2)))
	want := "0/2 nodes available: 1 did not match constraint node.platform.arch==arm64, 1 image has no linux/arm64"
	if len(plan.Unplaced) != 1 || plan.Unplaced[0].Reason != want {
		t.Fatalf("unplaced %+v, want %q", plan.Unplaced, want)
	}
}
