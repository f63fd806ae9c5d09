package apiserver

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/ca"
	"github.com/warrenhq/warren/controlplane/store"
)

// replicaFixture is a leader m1 serving over TLS, holding one uploaded
// image, and a follower m2 (its own blob dir, its own certificate) that
// reaches m1 as a manager does.
type replicaFixture struct {
	cl     *cluster
	m1, m2 *fakeBackend
	s2     *Server
	img    api.Image
}

func newReplicaFixture(t *testing.T, archive []byte) *replicaFixture {
	t.Helper()
	cl := newCluster(t)
	m1 := cl.backend(t, "m1", true)
	srv := cl.serve(t, cl.newServer(t, m1).Handler())
	admin := cl.client(t, "admin", hostOf(srv))
	img, err := admin.UploadImage(t.Context(), "warren/demo:1", bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := cl.ca.Issue(ca.Identity{NodeID: "m2", Role: ca.RoleManager}, 0, testNow, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	m2 := cl.backend(t, "m2", false)
	m2.fwdTLS = &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: cl.ca.Pool(), ServerName: ca.ManagerServerName, Certificates: []tls.Certificate{cert}}
	cl.apply(t, &store.Batch{PutNodes: []api.Node{
		{ID: "m1", Spec: api.NodeSpec{Role: api.RoleManager, Availability: api.AvailabilityActive},
			Status: api.NodeStatus{State: api.NodeReady, Manager: &api.ManagerStatus{RaftAddr: "raft:m1", APIAddr: hostOf(srv)}}},
		{ID: "m2", Spec: api.NodeSpec{Role: api.RoleManager, Availability: api.AvailabilityActive},
			Status: api.NodeStatus{State: api.NodeReady, Manager: &api.ManagerStatus{RaftAddr: "raft:m2"}}},
	}})
	return &replicaFixture{cl: cl, m1: m1, m2: m2, s2: cl.newServer(t, m2), img: *img}
}

func TestHoldImageFetchesVerifiesAndRecordsThroughTheLeader(t *testing.T) {
	archive := bytes.Repeat([]byte("layer"), 1000)
	f := newReplicaFixture(t, archive)
	var applies atomic.Int32
	f.m1.beforeApply = func() { applies.Add(1) }
	if err := f.s2.HoldImage(t.Context(), f.img.Name); err != nil {
		t.Fatal(err)
	}
	got, _ := f.cl.st.View().Image(f.img.Name)
	if want := []string{"m1", "m2"}; !slices.Equal(got.Holders, want) {
		t.Fatalf("holders %v, want %v", got.Holders, want)
	}
	b, err := os.ReadFile(filepath.Join(f.m2.blobDir, "sha256", strings.TrimPrefix(f.img.Digest, "sha256:")))
	if err != nil || !bytes.Equal(b, archive) {
		t.Fatalf("m2's copy: %d bytes, %v; want the %d uploaded", len(b), err, len(archive))
	}
	// Holding again changes nothing: no second write.
	before := applies.Load()
	if err := f.s2.HoldImage(t.Context(), f.img.Name); err != nil {
		t.Fatal(err)
	}
	if n := applies.Load(); n != before {
		t.Fatalf("a second HoldImage wrote again (%d writes → %d)", before, n)
	}
}

// Managers that finish fetching at once each record themselves: the
// leader makes their changes one at a time, so none overwrites another.
func TestConcurrentHoldersAreAllRecorded(t *testing.T) {
	f := newReplicaFixture(t, bytes.Repeat([]byte("layer"), 1000))
	s1 := f.cl.newServer(t, f.m1)
	var wg sync.WaitGroup
	want := []string{"m1"}
	for i := range 8 {
		id := fmt.Sprintf("m%d", i+2)
		want = append(want, id)
		wg.Go(func() {
			if err := s1.updateHolders(t.Context(), f.img.Name, f.img.Digest, []string{id}, nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, _ := f.cl.st.View().Image(f.img.Name)
	slices.Sort(got.Holders)
	slices.Sort(want)
	if !slices.Equal(got.Holders, want) {
		t.Fatalf("holders %v, want %v (a concurrent holder write lost)", got.Holders, want)
	}
}

func TestHoldImageRefusesACorruptCopy(t *testing.T) {
	f := newReplicaFixture(t, bytes.Repeat([]byte("layer"), 1000))
	p := filepath.Join(f.m1.blobDir, "sha256", strings.TrimPrefix(f.img.Digest, "sha256:"))
	// Same length, one byte flipped: only the digest can tell.
	if err := os.WriteFile(p, append([]byte("X"), bytes.Repeat([]byte("layer"), 1000)[1:]...), 0o600); err != nil {
		t.Fatal(err)
	}
	err := f.s2.HoldImage(t.Context(), f.img.Name)
	if err == nil || !strings.Contains(err.Error(), "want "+f.img.Digest) {
		t.Fatalf("HoldImage of a corrupt copy: %v, want a digest mismatch", err)
	}
	if got, _ := f.cl.st.View().Image(f.img.Name); slices.Contains(got.Holders, "m2") {
		t.Fatalf("m2 recorded as holder of a copy it could not verify: %v", got.Holders)
	}
	if ents, _ := os.ReadDir(filepath.Join(f.m2.blobDir, "sha256")); len(ents) != 0 {
		t.Fatalf("m2 kept %d unverified blobs", len(ents))
	}
}

func TestUpdateHoldersRefusesAReplacedImage(t *testing.T) {
	f := newReplicaFixture(t, bytes.Repeat([]byte("layer"), 1000))
	s1 := f.cl.newServer(t, f.m1)
	err := s1.updateHolders(t.Context(), f.img.Name, "sha256:"+strings.Repeat("0", 64), []string{"m2"}, nil)
	if err == nil || !strings.Contains(err.Error(), "is now") {
		t.Fatalf("holder of another digest: %v, want a refusal", err)
	}
	if err := s1.DropImageHolders(t.Context(), f.img.Name, f.img.Digest, []string{"m1"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.cl.st.View().Image(f.img.Name); len(got.Holders) != 0 {
		t.Fatalf("holders after dropping m1: %v", got.Holders)
	}
}

// twoPlatformArchive is an OCI layout whose one image is an index of a
// linux/amd64 and a linux/arm64 manifest (only the metadata a manager
// reads; the blobs the index points at need not exist for that).
func twoPlatformArchive(t *testing.T, name string) []byte {
	t.Helper()
	index := `{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` +
		`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","platform":{"os":"linux","architecture":"amd64"}},` +
		`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bb","platform":{"os":"linux","architecture":"arm64"}}]}`
	top := `{"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:ii","annotations":{"io.containerd.image.name":"` + name + `"}}]}`
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range [][2]string{{"blobs/sha256/ii", index}, {"index.json", top}} {
		_ = tw.WriteHeader(&tar.Header{Name: f[0], Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f[1]))})
		_, _ = tw.Write([]byte(f[1]))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestLoadedImagePlacesByItsPlatforms: the platforms a loaded archive
// offers are recorded at upload and pinned into a service that uses it,
// where the scheduler's platform filter reads them (as for a registry
// index).
func TestLoadedImagePlacesByItsPlatforms(t *testing.T) {
	cl := newCluster(t)
	srv := cl.serve(t, cl.newServer(t, cl.backend(t, "m1", true)).Handler())
	admin := cl.client(t, "admin", hostOf(srv))
	img, err := admin.UploadImage(t.Context(), "docker.io/warren/multi:1", bytes.NewReader(twoPlatformArchive(t, "docker.io/warren/multi:1")))
	if err != nil {
		t.Fatal(err)
	}
	want := []api.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}
	if !slices.Equal(img.Platforms, want) {
		t.Fatalf("recorded platforms %v, want %v", img.Platforms, want)
	}
	spec := webSpec("multi", 0)
	spec.Task.Container.Image = "warren/multi:1"
	if _, err := admin.CreateService(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	svc, _ := cl.st.View().ServiceByName("multi")
	if got := svc.Spec.Task.Container.ImagePlatforms; !slices.Equal(got, want) {
		t.Fatalf("service pinned to platforms %v, want the archive's %v", got, want)
	}
	if svc.Spec.Task.Container.ImageDigest != "" {
		t.Fatalf("a loaded image got a registry digest pin %q", svc.Spec.Task.Container.ImageDigest)
	}
}
