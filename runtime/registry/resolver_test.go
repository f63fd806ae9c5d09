package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/warrenhq/warren/controlplane/api"
)

// hubMirror serves one repository's manifest and config the way a
// registry does, and records the paths asked for.
type hubMirror struct {
	repo, tag      string
	manifest, conf []byte
	mu             sync.Mutex
	asked          []string
}

func newHubMirror(t *testing.T, repo, tag string) (*hubMirror, *httptest.Server) {
	conf, _ := json.Marshal(ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}})
	man, _ := json.Marshal(ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digestOf(conf), Size: int64(len(conf))},
	})
	m := &hubMirror{repo: repo, tag: tag, manifest: man, conf: conf}
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	return m, srv
}

func digestOf(b []byte) digest.Digest { return digest.FromBytes(b) }

func (m *hubMirror) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	m.asked = append(m.asked, r.URL.Path)
	m.mu.Unlock()
	base := "/v2/" + m.repo
	switch {
	case r.URL.Path == "/v2/":
		w.WriteHeader(http.StatusOK)
	case r.URL.Path == base+"/manifests/"+m.tag || r.URL.Path == base+"/manifests/"+string(digestOf(m.manifest)):
		w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
		w.Header().Set("Docker-Content-Digest", string(digestOf(m.manifest)))
		w.Header().Set("Content-Length", fmt.Sprint(len(m.manifest)))
		if r.Method != http.MethodHead {
			w.Write(m.manifest)
		}
	case r.URL.Path == base+"/blobs/"+string(digestOf(m.conf)):
		w.Header().Set("Content-Length", fmt.Sprint(len(m.conf)))
		w.Write(m.conf)
	default:
		http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
	}
}

// A short reference names an image on Docker Hub ("nginx" is
// docker.io/library/nginx:latest, "warren/demo:v1" docker.io/warren/demo),
// as the nodes pull it — not a registry host named after its first part.
func TestResolveShortReferences(t *testing.T) {
	for _, tc := range []struct{ ref, repo, tag string }{
		{"nginx", "library/nginx", "latest"},
		{"nginx:1.25", "library/nginx", "1.25"},
		{"warren/demo:v1", "warren/demo", "v1"},
		{"docker.io/library/nginx:latest", "library/nginx", "latest"},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			m, srv := newHubMirror(t, tc.repo, tc.tag)
			cfg := api.RegistryConfig{Mirrors: map[string][]string{DockerHub: {srv.URL}}}
			r := &Resolver{}
			got, err := r.Resolve(context.Background(), tc.ref, cfg, nil)
			if err != nil {
				t.Fatalf("resolve %s: %v (asked %v)", tc.ref, err, m.asked)
			}
			if got.Digest != string(digestOf(m.manifest)) {
				t.Errorf("digest %s, want %s", got.Digest, digestOf(m.manifest))
			}
			if len(got.Platforms) != 1 || got.Platforms[0].Architecture != "amd64" {
				t.Errorf("platforms %+v", got.Platforms)
			}
			if !strings.HasPrefix(m.asked[len(m.asked)-1], "/v2/"+tc.repo+"/") {
				t.Errorf("asked %v, want paths under /v2/%s/", m.asked, tc.repo)
			}
		})
	}
}
