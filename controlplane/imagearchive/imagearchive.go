// Package imagearchive reads what an image archive (an OCI image layout or
// a `docker save` tarball, as `warren image load` takes) says about itself:
// the image names it declares and the platforms each offers. The managers
// record the platforms so the scheduler places a loaded image exactly as it
// places an image index from a registry.
//
// It only parses; it must not import containerd or anything of the node
// side (controlplane/imports_test.go).
package imagearchive

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/warrenhq/warren/controlplane/api"
)

// Image is one image an archive declares.
type Image struct {
	// Name is the reference as the archive spells it (not normalized).
	Name string
	// Platforms are the platforms the image offers: one per manifest of
	// an index, or the one of a single manifest's config. Empty when the
	// archive does not say (a blob is missing).
	Platforms []api.Platform
}

// Annotations the archive's index.json names images by: containerd's, and
// the OCI one when it holds a full reference rather than a bare tag.
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// maxMetaBlob bounds the blobs kept in memory while reading: indexes,
// manifests and configs are a few KiB; layers are skipped.
const maxMetaBlob = 4 << 20

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Platform    *ociPlatform      `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type ociPlatform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

type index struct {
	MediaType string       `json:"mediaType"`
	Manifests []descriptor `json:"manifests"`
}

type manifest struct {
	Config descriptor `json:"config"`
}

type dockerEntry struct {
	Config   string
	RepoTags []string
}

// Read reads an archive to its end and returns the images it declares, in
// the order it declares them; the same name declared twice is one image.
func Read(r io.Reader) ([]Image, error) {
	tr := tar.NewReader(r)
	blobs := map[string][]byte{} // "sha256:<hex>" and archive path → content
	var idx *index
	var docker []dockerEntry
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not a tar archive: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		switch {
		case name == "index.json":
			idx = new(index)
			if err := json.NewDecoder(tr).Decode(idx); err != nil {
				return nil, fmt.Errorf("index.json: %w", err)
			}
		case name == "manifest.json":
			if err := json.NewDecoder(tr).Decode(&docker); err != nil {
				return nil, fmt.Errorf("manifest.json: %w", err)
			}
		case h.Typeflag == tar.TypeReg && h.Size <= maxMetaBlob:
			// Only JSON is kept: a small layer is read past, not held.
			var first [1]byte
			if n, _ := io.ReadFull(tr, first[:]); n == 0 || first[0] != '{' {
				continue
			}
			rest, err := io.ReadAll(tr)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			b := append(first[:], rest...)
			blobs[name] = b
			if hexd, ok := strings.CutPrefix(name, "blobs/sha256/"); ok {
				blobs["sha256:"+hexd] = b
			}
		}
	}
	var out []Image
	add := func(name string, ps []api.Platform) {
		i := slices.IndexFunc(out, func(x Image) bool { return x.Name == name })
		if i < 0 {
			out = append(out, Image{Name: name})
			i = len(out) - 1
		}
		for _, p := range ps {
			if !slices.Contains(out[i].Platforms, p) {
				out[i].Platforms = append(out[i].Platforms, p)
			}
		}
	}
	if idx != nil {
		for _, d := range idx.Manifests {
			name := d.Annotations[annotationContainerdName]
			if name == "" {
				if n := d.Annotations[annotationRefName]; strings.ContainsAny(n, "/:") {
					name = n
				}
			}
			if name != "" {
				add(name, platformsOf(blobs, d, 0))
			}
		}
	}
	for _, e := range docker {
		var ps []api.Platform
		if p, ok := configPlatform(blobs[path.Clean(e.Config)]); ok {
			ps = []api.Platform{p}
		}
		for _, tag := range e.RepoTags {
			// An OCI layout that also carries a manifest.json (as `warren
			// image pack` writes) already said more in index.json.
			if i := slices.IndexFunc(out, func(x Image) bool { return sameName(x.Name, tag) }); i >= 0 {
				continue
			}
			add(tag, ps)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the archive names no image (no index.json annotation or manifest.json RepoTags)")
	}
	return out, nil
}

// platformsOf follows a descriptor to the platforms it offers. Nested
// indexes are followed a few levels deep; attestation manifests
// (platform unknown/unknown, as buildx writes) offer none.
func platformsOf(blobs map[string][]byte, d descriptor, depth int) []api.Platform {
	if isIndex(d.MediaType) {
		var in index
		b, ok := blobs[d.Digest]
		if !ok || depth > 3 || json.Unmarshal(b, &in) != nil {
			return nil
		}
		var out []api.Platform
		for _, m := range in.Manifests {
			for _, p := range platformsOf(blobs, m, depth+1) {
				if !slices.Contains(out, p) {
					out = append(out, p)
				}
			}
		}
		return out
	}
	if d.Platform != nil {
		if d.Platform.OS == "unknown" || d.Platform.Architecture == "unknown" {
			return nil
		}
		return []api.Platform{{OS: d.Platform.OS, Architecture: d.Platform.Architecture, Variant: d.Platform.Variant}}
	}
	var m manifest
	if b, ok := blobs[d.Digest]; !ok || json.Unmarshal(b, &m) != nil {
		return nil
	}
	if p, ok := configPlatform(blobs[m.Config.Digest]); ok {
		return []api.Platform{p}
	}
	return nil
}

func isIndex(mediaType string) bool {
	return mediaType == "application/vnd.oci.image.index.v1+json" ||
		mediaType == "application/vnd.docker.distribution.manifest.list.v2+json"
}

// configPlatform reads os/architecture/variant from an image config.
func configPlatform(b []byte) (api.Platform, bool) {
	var c ociPlatform
	if len(b) == 0 || json.Unmarshal(b, &c) != nil || c.OS == "" || c.Architecture == "" {
		return api.Platform{}, false
	}
	return api.Platform{OS: c.OS, Architecture: c.Architecture, Variant: c.Variant}, true
}

// sameName compares references loosely: docker's RepoTags drop the
// docker.io/ and library/ prefixes containerd's annotation keeps.
func sameName(a, b string) bool {
	trim := func(s string) string {
		s = strings.TrimPrefix(s, "docker.io/")
		return strings.TrimPrefix(s, "library/")
	}
	return trim(a) == trim(b)
}
