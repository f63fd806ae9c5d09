package scheduler

import (
	"fmt"
	"slices"
	"strings"

	"github.com/warrenhq/warren/controlplane/api"
)

// NodePlatform is the platform a node reported (os/arch/variant).
func NodePlatform(n *api.Node) api.Platform {
	return api.Platform{OS: n.Status.OS, Architecture: n.Status.Arch, Variant: n.Status.Variant}
}

// normArch folds the names kernels and toolchains use for one
// architecture into the OCI one (uname says x86_64 and aarch64).
func normArch(arch, variant string) (string, string) {
	switch strings.ToLower(arch) {
	case "x86_64", "x86-64", "amd64":
		return "amd64", variant
	case "aarch64", "arm64":
		if variant == "8" || variant == "v8" {
			variant = ""
		}
		return "arm64", variant
	case "armhf":
		return "arm", "v7"
	case "armel":
		return "arm", "v6"
	case "i386", "i686", "386":
		return "386", variant
	}
	return strings.ToLower(arch), variant
}

// PlatformMatches reports whether a node of platform node can run an image
// built for img. An image without a variant runs on every variant; an arm
// node runs images of its variant and older (v7 runs v6 and v5), as
// containerd's matcher chooses.
func PlatformMatches(node, img api.Platform) bool {
	if !strings.EqualFold(node.OS, img.OS) {
		return false
	}
	na, nv := normArch(node.Architecture, node.Variant)
	ia, iv := normArch(img.Architecture, img.Variant)
	if na != ia {
		return false
	}
	if iv == "" || iv == nv {
		return true
	}
	if na == "arm" {
		if nv == "" {
			nv = "v7"
		}
		return len(iv) == 2 && len(nv) == 2 && iv[0] == 'v' && nv[0] == 'v' && iv[1] <= nv[1]
	}
	return false
}

// ImageRuns reports whether an image of the given platforms (none:
// unknown) can run on node n. The global orchestrator asks it, so a
// global service has no task for a node its image cannot run on.
func ImageRuns(images []api.Platform, n *api.Node) bool {
	if len(images) == 0 {
		return true
	}
	np := NodePlatform(n)
	for _, p := range images {
		if PlatformMatches(np, p) {
			return true
		}
	}
	return false
}

// platformFilter keeps tasks off nodes whose platform the task's image
// (an index's entries, or a single manifest's) does not offer. An image
// whose platforms are unknown (not pinned, a loaded archive) may go
// anywhere. It notes the platforms it refused, for the explanation.
type platformFilter struct {
	images  []api.Platform
	refused map[string]bool
}

func newPlatformFilter(task *api.Task) Filter {
	ps := task.Spec.Container.ImagePlatforms
	if len(ps) == 0 {
		return nil
	}
	return &platformFilter{images: ps, refused: map[string]bool{}}
}

func (f *platformFilter) Check(n *NodeInfo) bool {
	np := NodePlatform(n.Node)
	for _, p := range f.images {
		if PlatformMatches(np, p) {
			return true
		}
	}
	f.refused[np.String()] = true
	return false
}

func (f *platformFilter) Explain(count int) string {
	ps := make([]string, 0, len(f.refused))
	for p := range f.refused {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return fmt.Sprintf("%d image has no %s", count, strings.Join(ps, " or "))
}

func (f *platformFilter) static() bool { return true }
