package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"reflect"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func readArchive(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = data
	}
}

func blob(t *testing.T, files map[string][]byte, d ocispec.Descriptor) []byte {
	t.Helper()
	b, ok := files[blobPath(d.Digest)]
	if !ok {
		t.Fatalf("blob %s missing", d.Digest)
	}
	if got := digest.FromBytes(b); got != d.Digest {
		t.Fatalf("blob digest: got %s, descriptor says %s", got, d.Digest)
	}
	if int64(len(b)) != d.Size {
		t.Fatalf("blob %s size %d, descriptor says %d", d.Digest, len(b), d.Size)
	}
	return b
}

func TestPackBinary(t *testing.T) {
	bin := []byte("\x7fELF pretend binary")
	var buf bytes.Buffer
	cfg := ImageConfig{Cmd: []string{"-v"}, Env: []string{"A=b"}, ExposedPorts: []string{"80", "80/udp"}, User: "65534"}
	if err := PackBinary(&buf, "warren/demo:v1", bin, cfg); err != nil {
		t.Fatal(err)
	}
	files := readArchive(t, buf.Bytes())
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Fatalf("oci-layout: %s", files["oci-layout"])
	}
	var idx ocispec.Index
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 {
		t.Fatalf("index has %d manifests", len(idx.Manifests))
	}
	md := idx.Manifests[0]
	if got := md.Annotations[AnnotationImageName]; got != "docker.io/warren/demo:v1" {
		t.Fatalf("image name annotation %q", got)
	}
	var man ocispec.Manifest
	if err := json.Unmarshal(blob(t, files, md), &man); err != nil {
		t.Fatal(err)
	}
	var img ocispec.Image
	if err := json.Unmarshal(blob(t, files, man.Config), &img); err != nil {
		t.Fatal(err)
	}
	if len(man.Layers) != 1 || len(img.RootFS.DiffIDs) != 1 {
		t.Fatalf("layers %d diffids %d", len(man.Layers), len(img.RootFS.DiffIDs))
	}
	gz, err := gzip.NewReader(bytes.NewReader(blob(t, files, man.Layers[0])))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(gz)
	if err != nil {
		t.Fatal(err)
	}
	if got := digest.FromBytes(raw); got != img.RootFS.DiffIDs[0] {
		t.Fatalf("diff id %s, config says %s", got, img.RootFS.DiffIDs[0])
	}
	layer := readArchive(t, raw)
	if !bytes.Equal(layer["app"], bin) {
		t.Fatal("layer /app differs from the binary")
	}
	if _, ok := layer["etc/passwd"]; !ok {
		t.Fatal("layer lacks /etc/passwd")
	}
	c := img.Config
	if c.Entrypoint[0] != "/app" || c.Cmd[0] != "-v" || c.User != "65534" {
		t.Fatalf("config %+v", c)
	}
	if _, ok := c.ExposedPorts["80/tcp"]; !ok {
		t.Fatalf("exposed ports %v", c.ExposedPorts)
	}
	if _, ok := c.ExposedPorts["80/udp"]; !ok {
		t.Fatalf("exposed ports %v", c.ExposedPorts)
	}
	if c.Env[len(c.Env)-1] != "A=b" || len(c.Env) != 2 {
		t.Fatalf("env %v", c.Env)
	}
	var dm []struct {
		Config           string
		RepoTags, Layers []string
	}
	if err := json.Unmarshal(files["manifest.json"], &dm); err != nil {
		t.Fatal(err)
	}
	if dm[0].RepoTags[0] != "warren/demo:v1" || dm[0].Config != blobPath(man.Config.Digest) {
		t.Fatalf("docker manifest %+v", dm)
	}

	// Reproducible: same input, same bytes.
	var again bytes.Buffer
	if err := PackBinary(&again, "warren/demo:v1", bin, cfg); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Fatal("archive not reproducible")
	}
}

func TestNormalizeRef(t *testing.T) {
	for in, want := range map[string]string{
		"demo":                     "docker.io/library/demo:latest",
		"warren/demo:v1":           "docker.io/warren/demo:v1",
		"docker.io/warren/demo:v2": "docker.io/warren/demo:v2",
		"localhost:5000/x":         "localhost:5000/x:latest",
		"reg.example/a/b:1":        "reg.example/a/b:1",
	} {
		if got := NormalizeRef(in); got != want {
			t.Errorf("NormalizeRef(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPackRootfs(t *testing.T) {
	var rootfs bytes.Buffer
	tw := tar.NewWriter(&rootfs)
	for _, h := range []*tar.Header{
		{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./usr/bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./bin", Typeflag: tar.TypeSymlink, Linkname: "usr/bin"},
		{Name: "./etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5, Uid: 0},
		{Name: "./var/lib/postgresql/", Typeflag: tar.TypeDir, Mode: 0o700, Uid: 104, Gid: 111},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			_, _ = tw.Write([]byte("root\n"))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	cfg := ImageConfig{Cmd: []string{"postgres"}, User: "postgres", Env: []string{"PGDATA=/var/lib/postgresql/data"}}
	if err := PackRootfs(&buf, "warren/postgres:16", bytes.NewReader(rootfs.Bytes()), cfg); err != nil {
		t.Fatal(err)
	}
	files := readArchive(t, buf.Bytes())
	var idx ocispec.Index
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	var man ocispec.Manifest
	if err := json.Unmarshal(blob(t, files, idx.Manifests[0]), &man); err != nil {
		t.Fatal(err)
	}
	var img ocispec.Image
	if err := json.Unmarshal(blob(t, files, man.Config), &img); err != nil {
		t.Fatal(err)
	}
	if len(img.Config.Entrypoint) != 0 || len(img.Config.Cmd) != 1 || img.Config.Cmd[0] != "postgres" || img.Config.User != "postgres" {
		t.Errorf("config %+v", img.Config)
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob(t, files, man.Layers[0])))
	if err != nil {
		t.Fatal(err)
	}
	layer, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	// The layer is the root filesystem byte for byte, and the config names
	// its digest.
	if !bytes.Equal(layer, rootfs.Bytes()) {
		t.Errorf("layer differs from the root filesystem (%d vs %d bytes)", len(layer), rootfs.Len())
	}
	if img.RootFS.DiffIDs[0] != digest.FromBytes(rootfs.Bytes()) {
		t.Errorf("diff id %s, want %s", img.RootFS.DiffIDs[0], digest.FromBytes(rootfs.Bytes()))
	}

	for name, in := range map[string][]byte{"not a tar": []byte("hello, this is not a tarball at all, no header here....."), "empty": make([]byte, 1024)} {
		if err := PackRootfs(io.Discard, "x:1", bytes.NewReader(in), ImageConfig{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestPackBinaryKeepsItsEntrypoint(t *testing.T) {
	var buf bytes.Buffer
	if err := PackBinary(&buf, "x:1", []byte("bin"), ImageConfig{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(buf.Bytes(), []byte(`"Entrypoint":["/app"]`)) {
		t.Error("binary image lost its /app entrypoint")
	}
}

func TestPackIndex(t *testing.T) {
	var buf bytes.Buffer
	err := PackIndex(&buf, "multi:v1", []Input{
		{Platform: ocispec.Platform{Architecture: "amd64"}, Binary: []byte("amd64 binary")},
		{Platform: ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, Binary: []byte("arm binary")},
	}, ImageConfig{Env: []string{"A=1"}})
	if err != nil {
		t.Fatal(err)
	}
	files := readArchive(t, buf.Bytes())
	if _, ok := files["manifest.json"]; ok {
		t.Error("an index archive carries a docker manifest.json")
	}
	var top, idx ocispec.Index
	if err := json.Unmarshal(files["index.json"], &top); err != nil || len(top.Manifests) != 1 {
		t.Fatalf("index.json: %v %s", err, files["index.json"])
	}
	d := top.Manifests[0]
	if d.MediaType != ocispec.MediaTypeImageIndex || d.Annotations[AnnotationImageName] != "docker.io/library/multi:v1" || d.Annotations[ocispec.AnnotationRefName] != "v1" {
		t.Fatalf("top descriptor %+v: want an index named docker.io/library/multi:v1", d)
	}
	if err := json.Unmarshal(blob(t, files, d), &idx); err != nil || len(idx.Manifests) != 2 {
		t.Fatalf("image index: %v, %d manifests", err, len(idx.Manifests))
	}
	for i, want := range []ocispec.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm", Variant: "v7"}} {
		m := idx.Manifests[i]
		if m.Platform == nil || !reflect.DeepEqual(*m.Platform, want) {
			t.Errorf("manifest %d platform %+v, want %+v", i, m.Platform, want)
		}
		var man ocispec.Manifest
		var cfg ocispec.Image
		_ = json.Unmarshal(blob(t, files, m), &man)
		_ = json.Unmarshal(blob(t, files, man.Config), &cfg)
		if !reflect.DeepEqual(cfg.Platform, want) || len(cfg.Config.Entrypoint) != 1 || cfg.Config.Entrypoint[0] != "/app" || len(cfg.Config.Env) != 2 {
			t.Errorf("manifest %d config: platform %+v entrypoint %v env %v", i, cfg.Platform, cfg.Config.Entrypoint, cfg.Config.Env)
		}
		blob(t, files, man.Layers[0])
	}

	for _, c := range []struct {
		name   string
		inputs []Input
		err    string
	}{
		{"no input", nil, "no input"},
		{"a platform twice", []Input{{Platform: ocispec.Platform{Architecture: "arm64"}, Binary: []byte("a")}, {Platform: ocispec.Platform{OS: "linux", Architecture: "arm64"}, Binary: []byte("b")}}, "given twice"},
		{"no architecture", []Input{{Binary: []byte("a")}}, "no architecture"},
		{"both kinds in one input", []Input{{Platform: ocispec.Platform{Architecture: "arm64"}, Binary: []byte("a"), Rootfs: bytes.NewReader(nil)}}, "give a binary or a root filesystem"},
	} {
		if err := PackIndex(io.Discard, "x:1", c.inputs, ImageConfig{}); err == nil || !bytes.Contains([]byte(err.Error()), []byte(c.err)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.err)
		}
	}
}
