package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/imagearchive"
)

func TestImagePackRootfs(t *testing.T) {
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs.tar")
	f, err := os.Create(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	_ = tw.WriteHeader(&tar.Header{Name: "./etc/", Typeflag: tar.TypeDir, Mode: 0o755})
	_ = tw.WriteHeader(&tar.Header{Name: "./etc/hostname", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2})
	_, _ = tw.Write([]byte("x\n"))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(dir, "img.tar")
	if _, _, err := runCLI(t, "image", "pack", "--rootfs", rootfs, "--name", "deb:1", "--entrypoint", "/bin/sh", "-o", out); err != nil {
		t.Fatal(err)
	}
	img, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	names, err := archiveNames(img)
	if err != nil || len(names) != 1 || names[0] != "docker.io/library/deb:1" {
		t.Errorf("names %v, %v", names, err)
	}
	for _, args := range [][]string{
		{"image", "pack", "--rootfs", rootfs, "--binary", rootfs, "--name", "x", "-o", out},
		{"image", "pack", "--name", "x", "-o", out},
	} {
		if _, _, err := runCLI(t, args...); err == nil || !strings.Contains(err.Error(), "one of --binary") {
			t.Errorf("%v: %v", args, err)
		}
	}
	bad := filepath.Join(dir, "bad.tar")
	_ = os.WriteFile(bad, []byte(strings.Repeat("not tar ", 200)), 0o644)
	if _, _, err := runCLI(t, "image", "pack", "--rootfs", bad, "--name", "x", "-o", filepath.Join(dir, "o.tar")); err == nil || !strings.Contains(err.Error(), "not a tar archive") {
		t.Errorf("bad rootfs: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "o.tar")); !os.IsNotExist(err) {
		t.Errorf("a failed pack left its output behind")
	}
}

func TestImagePackInputs(t *testing.T) {
	for _, c := range []struct {
		name                      string
		binaries, rootfses, plats []string
		want                      []string // path@platform
		err                       string
	}{
		{name: "one input, this machine's platform", binaries: []string{"a"}, want: []string{"a@"}},
		{name: "one input for another platform", rootfses: []string{"r"}, plats: []string{"linux/arm64"}, want: []string{"r@linux/arm64"}},
		{name: "paired by position", binaries: []string{"a", "b"}, plats: []string{"linux/amd64", "linux/arm/v7"}, want: []string{"a@linux/amd64", "b@linux/arm/v7"}},
		{name: "commas as buildx writes them", rootfses: []string{"a", "b"}, plats: []string{"linux/amd64,linux/arm64"}, want: []string{"a@linux/amd64", "b@linux/arm64"}},
		{name: "both kinds", binaries: []string{"a"}, rootfses: []string{"b"}, plats: []string{"linux/amd64", "linux/arm64"}, err: "one of --binary"},
		{name: "no input", plats: []string{"linux/amd64"}, err: "one of --binary"},
		{name: "fewer platforms than inputs", binaries: []string{"a", "b"}, plats: []string{"linux/amd64"}, err: "1 --platform for 2 inputs"},
		{name: "several inputs without platforms", binaries: []string{"a", "b"}, err: "name the platform of each input"},
		{name: "a platform twice", binaries: []string{"a", "b"}, plats: []string{"linux/arm64", "linux/aarch64"}, err: "given twice"},
		{name: "an architecture alone", binaries: []string{"a"}, plats: []string{"arm64"}, err: "want os/arch"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := packInputs(c.binaries, c.rootfses, c.plats)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, in := range got {
				p := ""
				if in.platform != nil {
					p = platforms.Format(*in.platform)
				}
				s = append(s, in.path+"@"+p)
			}
			if !slices.Equal(s, c.want) {
				t.Fatalf("inputs %v, want %v", s, c.want)
			}
		})
	}
}

// TestImagePackMultiPlatform packs two root filesystems that differ by a
// file and reads the archive back as a node and a manager would: one
// index named by the image, one manifest per platform, each config of its
// own platform and each layer the right root filesystem.
func TestImagePackMultiPlatform(t *testing.T) {
	dir := t.TempDir()
	rootfs := func(arch string) string {
		p := filepath.Join(dir, arch+".tar")
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		tw := tar.NewWriter(f)
		_ = tw.WriteHeader(&tar.Header{Name: "etc/platform", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(arch))})
		_, _ = tw.Write([]byte(arch))
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		return p
	}
	out := filepath.Join(dir, "multi.tar")
	if _, _, err := runCLI(t, "image", "pack", "--name", "multi:v1", "-o", out, "--entrypoint", "/app",
		"--platform", "linux/amd64", "--rootfs", rootfs("amd64"), "--platform", "linux/arm64", "--rootfs", rootfs("arm64")); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	imgs, err := imagearchive.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	want := []api.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}
	if len(imgs) != 1 || imgs[0].Name != "docker.io/library/multi:v1" || !slices.Equal(imgs[0].Platforms, want) {
		t.Fatalf("archive declares %+v, want multi:v1 of %v", imgs, want)
	}

	// Follow index.json → index → manifest → config and layer per platform.
	_, _ = f.Seek(0, io.SeekStart)
	blobs := map[string][]byte{}
	var names []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		names = append(names, h.Name)
		blobs[strings.Replace(h.Name, "blobs/sha256/", "sha256:", 1)] = b
	}
	if slices.Contains(names, "manifest.json") {
		t.Errorf("a multi-platform archive carries a docker manifest.json, which can name only one platform")
	}
	var top ocispec.Index
	if err := json.Unmarshal(blobs["index.json"], &top); err != nil || len(top.Manifests) != 1 || top.Manifests[0].MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("index.json: %s (%v): want one descriptor of an image index", blobs["index.json"], err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(blobs[top.Manifests[0].Digest.String()], &idx); err != nil || len(idx.Manifests) != 2 {
		t.Fatalf("the image index: %v, %d manifests", err, len(idx.Manifests))
	}
	for _, d := range idx.Manifests {
		var m ocispec.Manifest
		var cfg ocispec.Image
		if err := json.Unmarshal(blobs[d.Digest.String()], &m); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(blobs[m.Config.Digest.String()], &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.Architecture != d.Platform.Architecture || cfg.OS != "linux" || !slices.Equal(cfg.Config.Entrypoint, []string{"/app"}) {
			t.Errorf("%s: config says %s/%s entrypoint %v", d.Platform.Architecture, cfg.OS, cfg.Architecture, cfg.Config.Entrypoint)
		}
		zr, err := gzip.NewReader(bytes.NewReader(blobs[m.Layers[0].Digest.String()]))
		if err != nil {
			t.Fatal(err)
		}
		lr := tar.NewReader(zr)
		if _, err := lr.Next(); err != nil {
			t.Fatal(err)
		}
		if b, _ := io.ReadAll(lr); string(b) != d.Platform.Architecture {
			t.Errorf("%s's layer holds /etc/platform %q: the platforms' root filesystems are swapped", d.Platform.Architecture, b)
		}
	}
}
