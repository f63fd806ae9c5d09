package imagearchive

import (
	"archive/tar"
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
)

// archive writes a tar of the given files, in order.
func archive(t *testing.T, files ...[2]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f[0], Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f[1]))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const (
	amdCfg = `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}`
	armCfg = `{"architecture":"arm","os":"linux","variant":"v7"}`
	// Digests are only keys here: the reader does not check them (the
	// node's containerd does when it imports).
	hexA, hexB, hexC, hexI = "aa", "bb", "cc", "ii"
)

func blob(hex, body string) [2]string { return [2]string{"blobs/sha256/" + hex, body} }

func TestRead(t *testing.T) {
	amd := api.Platform{OS: "linux", Architecture: "amd64"}
	arm64 := api.Platform{OS: "linux", Architecture: "arm64"}
	armv7 := api.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	for _, c := range []struct {
		name  string
		files [][2]string
		want  []Image
		err   string
	}{
		{
			name: "docker save: the platform is the config's",
			files: [][2]string{
				{"abc.json", amdCfg},
				{"manifest.json", `[{"Config":"abc.json","RepoTags":["web:1","web:latest"],"Layers":["l.tar"]}]`},
			},
			want: []Image{{Name: "web:1", Platforms: []api.Platform{amd}}, {Name: "web:latest", Platforms: []api.Platform{amd}}},
		},
		{
			name: "an OCI layout whose descriptor names its platform",
			files: [][2]string{
				{"index.json", `{"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","platform":{"os":"linux","architecture":"arm64"},"annotations":{"io.containerd.image.name":"docker.io/library/web:1"}}]}`},
			},
			want: []Image{{Name: "docker.io/library/web:1", Platforms: []api.Platform{arm64}}},
		},
		{
			name: "a descriptor without a platform: read through the manifest to its config",
			files: [][2]string{
				blob(hexA, `{"config":{"digest":"sha256:bb"}}`),
				blob(hexB, armCfg),
				{"./index.json", `{"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","annotations":{"org.opencontainers.image.ref.name":"example.com/web:1"}}]}`},
			},
			want: []Image{{Name: "example.com/web:1", Platforms: []api.Platform{armv7}}},
		},
		{
			name: "a multi-platform image: an index of manifests, attestations left out",
			files: [][2]string{
				blob(hexI, `{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
					{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","platform":{"os":"linux","architecture":"amd64"}},
					{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bb","platform":{"os":"linux","architecture":"arm64"}},
					{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:cc","platform":{"os":"unknown","architecture":"unknown"}}]}`),
				{"index.json", `{"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:ii","annotations":{"io.containerd.image.name":"docker.io/library/web:1","org.opencontainers.image.ref.name":"1"}}]}`},
			},
			want: []Image{{Name: "docker.io/library/web:1", Platforms: []api.Platform{amd, arm64}}},
		},
		{
			name: "a docker manifest list is an index too",
			files: [][2]string{
				blob(hexI, `{"manifests":[{"digest":"sha256:aa","platform":{"os":"linux","architecture":"arm","variant":"v7"}}]}`),
				{"index.json", `{"manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","digest":"sha256:ii","annotations":{"io.containerd.image.name":"web:1"}}]}`},
			},
			want: []Image{{Name: "web:1", Platforms: []api.Platform{armv7}}},
		},
		{
			name: "index.json and manifest.json of one image (warren image pack): one image, index.json's word",
			files: [][2]string{
				blob(hexC, amdCfg),
				{"index.json", `{"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","platform":{"os":"linux","architecture":"amd64"},"annotations":{"io.containerd.image.name":"docker.io/warren/demo:v1"}}]}`},
				{"manifest.json", `[{"Config":"blobs/sha256/cc","RepoTags":["warren/demo:v1"]}]`},
			},
			want: []Image{{Name: "docker.io/warren/demo:v1", Platforms: []api.Platform{amd}}},
		},
		{
			name: "a missing blob: the image is named, its platforms unknown",
			files: [][2]string{
				{"index.json", `{"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:ii","annotations":{"io.containerd.image.name":"web:1"}}]}`},
			},
			want: []Image{{Name: "web:1"}},
		},
		{
			name:  "an archive that names nothing",
			files: [][2]string{{"index.json", `{"manifests":[{"digest":"sha256:aa","annotations":{"org.opencontainers.image.ref.name":"latest"}}]}`}},
			err:   "names no image",
		},
		{
			name:  "a broken index.json",
			files: [][2]string{{"index.json", `{"manifests":`}},
			err:   "index.json",
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Read(bytes.NewReader(archive(t, c.files...)))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("Read:\n got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestReadRefusesWhatIsNotATar(t *testing.T) {
	if _, err := Read(strings.NewReader(strings.Repeat("not tar ", 200))); err == nil || !strings.Contains(err.Error(), "not a tar archive") {
		t.Fatalf("err %v", err)
	}
}
