// Package ociimage writes OCI image archives from Go with the standard
// library: a single static binary, or a root filesystem tarball (Debian's
// mmdebstrap), becomes a one-layer image that `ctr images import`,
// containerd's import API and `docker load` accept.
// It exists so Warren can build its demo image (and users their own images)
// on machines that reach no registry.
//
// It owns the archive format only; it must not import containerd or any
// other part of Warren.
package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImageConfig is the part of an image's runtime configuration PackBinary
// lets callers choose. The entrypoint defaults to ["/app"].
type ImageConfig struct {
	Entrypoint   []string
	Cmd          []string
	Env          []string // K=V; PATH is added when missing
	ExposedPorts []string // "80/tcp", "80/udp"
	WorkingDir   string
	User         string
	Labels       map[string]string
	StopSignal   string
	// Created is recorded in the config and as every file's mtime; zero
	// keeps the archive byte-for-byte reproducible.
	Created time.Time
	// Arch defaults to runtime.GOARCH, OS to linux; Variant is for arm
	// (v7) and the like.
	Arch, OS, Variant string
}

// AnnotationImageName is the annotation containerd's importer reads the
// image name from.
const AnnotationImageName = "io.containerd.image.name"

// NormalizeRef turns a short reference into the fully qualified form
// containerd stores: "warren/demo:v1" → "docker.io/warren/demo:v1",
// "demo" → "docker.io/library/demo:latest".
func NormalizeRef(ref string) string {
	name, tag := ref, ""
	if i := strings.LastIndex(ref, "@"); i >= 0 {
		name, tag = ref[:i], ref[i:]
	} else if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		name, tag = ref[:i], ref[i:]
	}
	if tag == "" {
		tag = ":latest"
	}
	first, _, hasSlash := strings.Cut(name, "/")
	if !hasSlash || (!strings.ContainsAny(first, ".:") && first != "localhost") {
		if !hasSlash {
			name = "library/" + name
		}
		name = "docker.io/" + name
	}
	return name + tag
}

// PackBinary writes an OCI image layout as a tar stream to w: one gzip layer
// holding binary at /app, an empty /tmp and minimal /etc/passwd and
// /etc/group, with cfg as the image config, named ref. A docker-style
// manifest.json is included so `docker load` accepts it too.
func PackBinary(w io.Writer, ref string, binary []byte, cfg ImageConfig) error {
	if ref == "" {
		return fmt.Errorf("pack image: empty reference")
	}
	mtime := cfg.Created
	if mtime.IsZero() {
		mtime = time.Unix(0, 0)
	}
	layer, diffID, err := buildLayer(binary, mtime)
	if err != nil {
		return fmt.Errorf("pack image layer: %w", err)
	}
	if len(cfg.Entrypoint) == 0 {
		cfg.Entrypoint = []string{"/app"}
	}
	return writeImage(w, ref, layer, diffID, cfg)
}

// PackRootfs writes an image whose one layer is a root filesystem tarball,
// such as `mmdebstrap --format=tar` makes, taken as it is (owners, modes,
// links, device nodes). The image has no entrypoint unless cfg sets one.
func PackRootfs(w io.Writer, ref string, rootfs io.Reader, cfg ImageConfig) error {
	if ref == "" {
		return fmt.Errorf("pack image: empty reference")
	}
	layer, diffID, err := rootfsLayer(rootfs)
	if err != nil {
		return err
	}
	return writeImage(w, ref, layer, diffID, cfg)
}

// rootfsLayer compresses a root filesystem tarball into a layer and
// returns it with its diff ID.
func rootfsLayer(rootfs io.Reader) ([]byte, digest.Digest, error) {
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		return nil, "", err
	}
	h := sha256.New()
	// Everything read is compressed and hashed byte for byte; reading it
	// through a tar reader checks that it is a tarball at all.
	tee := io.TeeReader(rootfs, io.MultiWriter(zw, h))
	tr := tar.NewReader(tee)
	entries := 0
	for {
		_, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, "", fmt.Errorf("pack image: root filesystem: not a tar archive: %w", err)
		}
		entries++
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return nil, "", fmt.Errorf("pack image: root filesystem: %w", err)
		}
	}
	if entries == 0 {
		return nil, "", fmt.Errorf("pack image: root filesystem: the archive is empty")
	}
	if _, err := io.Copy(io.Discard, tee); err != nil { // the end-of-archive padding
		return nil, "", fmt.Errorf("pack image: root filesystem: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return gz.Bytes(), digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil))), nil
}

// Input is one platform's content of a multi-platform archive: a static
// binary (as PackBinary) or a root filesystem tarball (as PackRootfs).
type Input struct {
	Platform ocispec.Platform // OS defaults to linux
	Binary   []byte
	Rootfs   io.Reader
}

// PackIndex writes an archive whose image is an OCI image index with one
// manifest per input, as `docker buildx build --platform a,b` makes: a
// node imports and runs only its own platform's manifest. All platforms
// share cfg. No docker manifest.json is written: that format names one
// config per tag and cannot express an index (docker loads the OCI
// layout with its containerd image store).
func PackIndex(w io.Writer, ref string, inputs []Input, cfg ImageConfig) error {
	if ref == "" {
		return fmt.Errorf("pack image: empty reference")
	}
	if len(inputs) == 0 {
		return fmt.Errorf("pack image: no input")
	}
	var blobs []archiveFile
	var manifests []ocispec.Descriptor
	for i, in := range inputs {
		p := in.Platform
		if p.OS == "" {
			p.OS = "linux"
		}
		if p.Architecture == "" {
			return fmt.Errorf("pack image: input %d: no architecture", i+1)
		}
		if slices.ContainsFunc(manifests, func(d ocispec.Descriptor) bool { return platformString(*d.Platform) == platformString(p) }) {
			return fmt.Errorf("pack image: platform %s given twice", platformString(p))
		}
		c := cfg
		var layer []byte
		var diffID digest.Digest
		var err error
		switch {
		case (in.Binary == nil) == (in.Rootfs == nil):
			return fmt.Errorf("pack image: %s: give a binary or a root filesystem", platformString(p))
		case in.Binary != nil:
			mtime := cfg.Created
			if mtime.IsZero() {
				mtime = time.Unix(0, 0)
			}
			layer, diffID, err = buildLayer(in.Binary, mtime)
			if len(c.Entrypoint) == 0 {
				c.Entrypoint = []string{"/app"}
			}
		default:
			layer, diffID, err = rootfsLayer(in.Rootfs)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", platformString(p), err)
		}
		files, man, err := buildManifest(layer, diffID, c, p)
		if err != nil {
			return err
		}
		blobs = append(blobs, files...)
		manifests = append(manifests, man)
	}
	full := NormalizeRef(ref)
	index := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: manifests,
	}
	indexBlob, err := json.Marshal(index)
	if err != nil {
		return fmt.Errorf("pack image index: %w", err)
	}
	indexDesc := ocispec.Descriptor{
		MediaType:   ocispec.MediaTypeImageIndex,
		Digest:      digest.FromBytes(indexBlob),
		Size:        int64(len(indexBlob)),
		Annotations: nameAnnotations(full),
	}
	blobs = append(blobs, archiveFile{blobPath(indexDesc.Digest), indexBlob})
	return writeArchive(w, cfg.Created, indexDesc, blobs, nil)
}

// platformString is os/arch[/variant], as --platform spells it.
func platformString(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

type archiveFile struct {
	name string
	data []byte
}

// buildManifest makes one platform's config and manifest around its
// layer; it returns the blobs (layer, config, manifest) and the
// manifest's descriptor, which names the platform.
func buildManifest(layer []byte, diffID digest.Digest, cfg ImageConfig, p ocispec.Platform) ([]archiveFile, ocispec.Descriptor, error) {
	layerDesc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageLayerGzip,
		Digest:    digest.FromBytes(layer),
		Size:      int64(len(layer)),
	}
	img := ocispec.Image{
		Platform: ocispec.Platform{Architecture: p.Architecture, OS: p.OS, Variant: p.Variant},
		Config:   imageConfig(cfg),
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
	}
	if !cfg.Created.IsZero() {
		c := cfg.Created.UTC()
		img.Created = &c
	}
	cfgBlob, err := json.Marshal(img)
	if err != nil {
		return nil, ocispec.Descriptor{}, fmt.Errorf("pack image config: %w", err)
	}
	cfgDesc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageConfig,
		Digest:    digest.FromBytes(cfgBlob),
		Size:      int64(len(cfgBlob)),
	}
	manifest := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cfgDesc,
		Layers:    []ocispec.Descriptor{layerDesc},
	}
	manBlob, err := json.Marshal(manifest)
	if err != nil {
		return nil, ocispec.Descriptor{}, fmt.Errorf("pack image manifest: %w", err)
	}
	manDesc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageManifest,
		Digest:    digest.FromBytes(manBlob),
		Size:      int64(len(manBlob)),
		Platform:  &ocispec.Platform{Architecture: p.Architecture, OS: p.OS, Variant: p.Variant},
	}
	return []archiveFile{
		{blobPath(layerDesc.Digest), layer},
		{blobPath(cfgDesc.Digest), cfgBlob},
		{blobPath(manDesc.Digest), manBlob},
	}, manDesc, nil
}

// nameAnnotations name the archive's image for containerd's importer (the
// full reference) and for OCI tools (the tag).
func nameAnnotations(full string) map[string]string {
	return map[string]string{
		AnnotationImageName:       full,
		ocispec.AnnotationRefName: full[strings.LastIndex(full, ":")+1:],
	}
}

// writeImage writes the single-platform archive around one compressed
// layer, with a docker manifest.json beside the OCI layout.
func writeImage(w io.Writer, ref string, layer []byte, diffID digest.Digest, cfg ImageConfig) error {
	full := NormalizeRef(ref)
	p := ocispec.Platform{OS: cfg.OS, Architecture: cfg.Arch, Variant: cfg.Variant}
	if p.Architecture == "" {
		p.Architecture = runtime.GOARCH
	}
	if p.OS == "" {
		p.OS = "linux"
	}
	files, manDesc, err := buildManifest(layer, diffID, cfg, p)
	if err != nil {
		return err
	}
	manDesc.Annotations = nameAnnotations(full)
	// files are layer, config, manifest (buildManifest).
	dockerManifest, _ := json.Marshal([]map[string]any{{
		"Config":   files[1].name,
		"RepoTags": []string{dockerTag(full)},
		"Layers":   []string{files[0].name},
	}})
	return writeArchive(w, cfg.Created, manDesc, files, dockerManifest)
}

// writeArchive writes the OCI layout: oci-layout, the blobs, index.json
// naming top, and a docker manifest.json when given.
func writeArchive(w io.Writer, created time.Time, top ocispec.Descriptor, blobs []archiveFile, dockerManifest []byte) error {
	mtime := created
	if mtime.IsZero() {
		mtime = time.Unix(0, 0)
	}
	index := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{top},
	}
	indexBlob, err := json.Marshal(index)
	if err != nil {
		return fmt.Errorf("pack image index: %w", err)
	}
	layoutBlob, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})

	tw := tar.NewWriter(w)
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return fmt.Errorf("pack image: %w", err)
		}
	}
	files := append([]archiveFile{{ocispec.ImageLayoutFile, layoutBlob}}, blobs...)
	files = append(files, archiveFile{ocispec.ImageIndexFile, indexBlob})
	if dockerManifest != nil {
		files = append(files, archiveFile{"manifest.json", dockerManifest})
	}
	for _, f := range files {
		if err := writeFile(tw, f.name, 0o644, f.data, mtime); err != nil {
			return fmt.Errorf("pack image %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("pack image: %w", err)
	}
	return nil
}

func imageConfig(cfg ImageConfig) ocispec.ImageConfig {
	c := ocispec.ImageConfig{
		Entrypoint: cfg.Entrypoint,
		Cmd:        cfg.Cmd,
		WorkingDir: cfg.WorkingDir,
		User:       cfg.User,
		Labels:     cfg.Labels,
		StopSignal: cfg.StopSignal,
	}
	hasPath := false
	for _, e := range cfg.Env {
		if strings.HasPrefix(e, "PATH=") {
			hasPath = true
		}
	}
	if !hasPath {
		c.Env = append(c.Env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	c.Env = append(c.Env, cfg.Env...)
	if len(cfg.ExposedPorts) > 0 {
		c.ExposedPorts = map[string]struct{}{}
		for _, p := range cfg.ExposedPorts {
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			c.ExposedPorts[p] = struct{}{}
		}
	}
	return c
}

// buildLayer returns the gzip-compressed layer and the digest of its
// uncompressed tar (the diff ID the image config must name).
func buildLayer(binary []byte, mtime time.Time) ([]byte, digest.Digest, error) {
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		return nil, "", err
	}
	h := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(zw, h))
	dirs := []struct {
		name string
		mode int64
	}{{"etc/", 0o755}, {"tmp/", 0o1777}}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d.name, Mode: d.mode, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return nil, "", err
		}
	}
	files := []struct {
		name string
		mode int64
		data []byte
	}{
		{"app", 0o755, binary},
		{"etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")},
		{"etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n")},
	}
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	for _, f := range files {
		if err := writeFile(tw, f.name, f.mode, f.data, mtime); err != nil {
			return nil, "", err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return gz.Bytes(), digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil))), nil
}

func writeFile(tw *tar.Writer, name string, mode int64, data []byte, mtime time.Time) error {
	if err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)),
		ModTime: mtime, Format: tar.FormatPAX,
	}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

func blobPath(d digest.Digest) string {
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
}

// dockerTag strips the docker.io/ and library/ prefixes docker omits in RepoTags.
func dockerTag(full string) string {
	s := strings.TrimPrefix(full, "docker.io/")
	return strings.TrimPrefix(s, "library/")
}
