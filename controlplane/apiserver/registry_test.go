package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/secretbox"
	"github.com/warrenhq/warren/controlplane/store"
)

// fakeResolver answers what the "registry" names now and records the
// credentials it was given.
type fakeResolver struct {
	mu     sync.Mutex
	digest string
	plats  []api.Platform
	err    error
	calls  int
	creds  map[string]api.RegistryCredential
}

func (f *fakeResolver) Resolve(_ context.Context, ref string, cfg api.RegistryConfig, creds map[string]api.RegistryCredential) (api.ResolvedImage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.creds = map[string]api.RegistryCredential{}
	for k, v := range creds {
		f.creds[k] = v
	}
	if f.err != nil {
		return api.ResolvedImage{}, f.err
	}
	return api.ResolvedImage{Digest: f.digest, Platforms: f.plats}, nil
}

func (f *fakeResolver) set(d string, err error) {
	f.mu.Lock()
	f.digest, f.err = d, err
	f.mu.Unlock()
}

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func regSpec(name, image string) api.ServiceSpec {
	s := webSpec(name, 0)
	s.Task.Container.Image = image
	return s
}

// The manager pins a tag once; later writes that keep the image keep the
// pin, whatever the tag names by then; a new image (or a cleared digest,
// as --force sends) is resolved again; --no-resolve-image pins nothing; a
// registry that cannot answer leaves the service unpinned with a warning.
func TestServiceImagePinnedOnce(t *testing.T) {
	c := newCluster(t)
	res := &fakeResolver{digest: digestA, plats: []api.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}}
	srv := c.serve(t, c.newServerWith(t, Config{Backend: c.backend(t, "m1", true), Images: res}).Handler())
	admin := c.client(t, "admin", hostOf(srv))
	ctx := t.Context()

	if _, err := admin.RegistryLogin(ctx, client.RegistryLoginRequest{Host: "reg.lan:5000", Username: "u", Password: "login-pw"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateService(ctx, regSpec("web", "reg.lan:5000/demo:v1")); err != nil {
		t.Fatal(err)
	}
	svc, err := admin.Service(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	ct := svc.Spec.Task.Container
	if ct.Image != "reg.lan:5000/demo:v1" || ct.ImageDigest != digestA || len(ct.ImagePlatforms) != 2 {
		t.Fatalf("after create: image %q digest %q platforms %v", ct.Image, ct.ImageDigest, ct.ImagePlatforms)
	}
	if res.creds["reg.lan:5000"].Password != "login-pw" {
		t.Fatalf("resolver got credentials %v, want the login of reg.lan:5000", res.creds)
	}

	// The tag moves; an update that keeps the image keeps the pin.
	res.set(digestB, nil)
	spec := svc.Spec
	spec.Task.Container.Env = []string{"A=1"}
	if _, err := admin.UpdateService(ctx, "web", spec); err != nil {
		t.Fatal(err)
	}
	svc, _ = admin.Service(ctx, "web")
	if got := svc.Spec.Task.Container.ImageDigest; got != digestA {
		t.Fatalf("update without an image change re-pinned to %s", got)
	}
	// --force clears the digest: the tag is resolved again.
	spec = svc.Spec
	spec.Task.Container.ImageDigest, spec.Task.Container.ImagePlatforms = "", nil
	if _, err := admin.UpdateService(ctx, "web", spec); err != nil {
		t.Fatal(err)
	}
	svc, _ = admin.Service(ctx, "web")
	if got := svc.Spec.Task.Container.ImageDigest; got != digestB {
		t.Fatalf("cleared digest: pinned %s, want %s", got, digestB)
	}
	// A new image drops the old pin even though the client sent it back.
	res.set(digestA, nil)
	spec = svc.Spec
	spec.Task.Container.Image = "reg.lan:5000/demo:v2"
	if _, err := admin.UpdateService(ctx, "web", spec); err != nil {
		t.Fatal(err)
	}
	svc, _ = admin.Service(ctx, "web")
	if got := svc.Spec.Task.Container.ImageDigest; got != digestA {
		t.Fatalf("new image: pinned %s, want %s", got, digestA)
	}

	calls := res.calls
	if _, err := admin.CreateServiceWith(ctx, regSpec("raw", "reg.lan:5000/demo:v1"), client.ServiceWriteOptions{NoResolveImage: true}); err != nil {
		t.Fatal(err)
	}
	raw, _ := admin.Service(ctx, "raw")
	if raw.Spec.Task.Container.ImageDigest != "" || res.calls != calls {
		t.Fatalf("--no-resolve-image: digest %q, resolver called %d times", raw.Spec.Task.Container.ImageDigest, res.calls-calls)
	}

	bad := regSpec("baddigest", "reg.lan:5000/demo:v1")
	bad.Task.Container.ImageDigest = "sha256:xyz"
	_, err = admin.CreateService(ctx, bad)
	wantErr(t, err, http.StatusBadRequest, "is not sha256:<64 hex digits>")

	res.set("", errors.New("dial tcp: connection refused"))
	wr, err := admin.CreateService(ctx, regSpec("down", "reg.lan:5000/demo:v1"))
	if err != nil {
		t.Fatalf("an unreachable registry refused the create: %v", err)
	}
	if len(wr.Warnings) != 1 || !strings.Contains(wr.Warnings[0], "could not be resolved") {
		t.Fatalf("warnings %v", wr.Warnings)
	}

	// An archive loaded into the cluster is not looked up.
	c.apply(t, &store.Batch{PutImages: []api.Image{{Name: "docker.io/warren/demo:v1", Digest: digestA}}})
	calls = res.calls
	if _, err := admin.CreateService(ctx, regSpec("loaded", "warren/demo:v1")); err != nil {
		t.Fatal(err)
	}
	if res.calls != calls {
		t.Fatal("a loaded image was resolved at a registry")
	}
}

// --with-registry-auth: the CLI's credential becomes the service's own,
// sealed; it is used to resolve, reaches the node running the task, and
// is never shown.
func TestServiceRegistryAuth(t *testing.T) {
	c := newCluster(t)
	res := &fakeResolver{digest: digestA}
	srv := c.serve(t, c.newServerWith(t, Config{Backend: c.backend(t, "m1", true), Images: res}).Handler())
	admin := c.client(t, "admin", hostOf(srv))
	worker := c.client(t, "worker", hostOf(srv))
	manager := c.client(t, "manager", hostOf(srv))
	ctx := t.Context()
	const pw = "own-pw-7f3a9c"
	own := &api.RegistryCredential{Username: "me", Password: pw}
	if _, err := admin.CreateServiceWith(ctx, regSpec("web", "reg.lan:5000/demo:v1"), client.ServiceWriteOptions{RegistryAuth: own}); err != nil {
		t.Fatal(err)
	}
	if res.creds["reg.lan:5000"].Password != pw {
		t.Fatalf("resolver got %v, want the service's own credential", res.creds)
	}
	svc, err := admin.Service(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(svc)
	if svc.Spec.Task.Container.RegistryAuth == "" || strings.Contains(string(b), pw) || strings.Contains(string(b), "own-pw") {
		t.Fatalf("inspect: registry_auth %q, shows the password: %v", svc.Spec.Task.Container.RegistryAuth, strings.Contains(string(b), pw))
	}
	if snapshotHolds(t, c.st, []byte(pw)) {
		t.Fatal("the password is in the raft snapshot in clear")
	}
	logins, err := admin.RegistryLogins(ctx)
	if err != nil || len(logins) != 0 {
		t.Fatalf("a service's own credential is listed as a login: %v, %v", logins, err)
	}

	// Only the node that runs the service's task gets the credential.
	c.apply(t, &store.Batch{PutTasks: []api.Task{
		{ID: "t1", ServiceID: svc.ID, NodeID: "w1", DesiredState: api.TaskRunning, Spec: svc.Spec.Task},
	}})
	a, err := worker.Assignments(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Secrets) != 1 || a.Secrets[0].Kind != api.KindRegistryAuth {
		t.Fatalf("w1 got %+v, want its task's registry credential", a.Secrets)
	}
	pt, err := secretbox.Open(a.CacheKey, a.Secrets[0].Sealed, secretbox.ValueAAD(string(api.KindRegistryAuth), a.Secrets[0].ID))
	if err != nil || !strings.Contains(string(pt), pw) {
		t.Fatalf("w1 cannot open it: %v", err)
	}
	m, err := manager.Assignments(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Secrets) != 0 {
		t.Fatalf("m1 runs no task of web and got %+v", m.Secrets)
	}

	// Another service cannot borrow it by ID.
	other := regSpec("thief", "reg.lan:5000/demo:v1")
	other.Task.Container.RegistryAuth = svc.Spec.Task.Container.RegistryAuth
	_, err = admin.CreateService(ctx, other)
	wantErr(t, err, http.StatusBadRequest, "is not this service's credential")

	// It goes with its service.
	if _, err := admin.RemoveService(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.st.View().SecretByName(api.KindRegistryAuth, api.RegistryAuthName("web")); ok {
		t.Fatal("the service's credential outlived the service")
	}
}

func TestRegistryConfigAndLogins(t *testing.T) {
	c := newCluster(t)
	srv := c.serve(t, c.newServer(t, c.backend(t, "m1", true)).Handler())
	admin := c.client(t, "admin", hostOf(srv))
	worker := c.client(t, "worker", hostOf(srv))
	ctx := t.Context()

	for _, tc := range []struct {
		cfg  api.RegistryConfig
		want string
	}{
		{api.RegistryConfig{CAPEM: "not pem"}, "registry CA: no PEM certificate"},
		{api.RegistryConfig{Mirrors: map[string][]string{"docker.io": {"mirror:5000"}}}, "is not an http(s)://host"},
		{api.RegistryConfig{Mirrors: map[string][]string{"https://docker.io": {"https://m"}}}, "is not a registry host"},
		{api.RegistryConfig{Insecure: []string{"http://x"}}, "is not a registry host"},
	} {
		_, err := admin.SetRegistryConfig(ctx, tc.cfg)
		wantErr(t, err, http.StatusBadRequest, tc.want)
	}
	cfg := api.RegistryConfig{CAPEM: string(c.ca.CertPEM()), Insecure: []string{"plain.lan:5000"},
		Mirrors: map[string][]string{"docker.io": {"https://mirror.lan:5000"}}}
	if _, err := admin.SetRegistryConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	got, err := admin.RegistryConfig(ctx)
	if err != nil || got.CAPEM != cfg.CAPEM || got.Mirrors["docker.io"][0] != "https://mirror.lan:5000" {
		t.Fatalf("read back %+v, %v", got, err)
	}

	const pw = "login-pw-51be"
	for _, h := range []string{"docker.io", "mirror.lan:5000", "other.io"} {
		if _, err := admin.RegistryLogin(ctx, client.RegistryLoginRequest{Host: h, Username: "u", Password: pw}); err != nil {
			t.Fatal(err)
		}
	}
	// Logging in again replaces the value; it is one login still.
	if _, err := admin.RegistryLogin(ctx, client.RegistryLoginRequest{Host: "other.io", Username: "u", Password: pw + "2"}); err != nil {
		t.Fatal(err)
	}
	_, err = admin.RegistryLogin(ctx, client.RegistryLoginRequest{Host: "a/b", Username: "u", Password: "p"})
	wantErr(t, err, http.StatusBadRequest, "is not a registry host")
	logins, err := admin.RegistryLogins(ctx)
	if err != nil || len(logins) != 3 {
		t.Fatalf("logins %+v, %v", logins, err)
	}
	if b, _ := json.Marshal(logins); strings.Contains(string(b), pw) || strings.Contains(string(b), `"u"`) {
		t.Fatalf("login list shows credentials: %s", b)
	}
	if snapshotHolds(t, c.st, []byte(pw)) {
		t.Fatal("a login password is in the raft snapshot in clear")
	}

	// A task pulling from Docker Hub gets the settings and the logins of
	// Hub and its mirror, not the login of other.io.
	c.apply(t, &store.Batch{PutTasks: []api.Task{{ID: "t1", ServiceID: "s", NodeID: "w1", DesiredState: api.TaskRunning,
		Spec: api.TaskSpec{Container: api.ContainerSpec{Image: "nginx:latest"}}}}})
	a, err := worker.Assignments(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, s := range a.Secrets {
		names = append(names, s.Name)
	}
	if len(a.Secrets) != 2 || a.Registry.Mirrors["docker.io"] == nil || a.Registry.CAPEM == "" {
		t.Fatalf("assignments carry secrets %v, registry %+v", names, a.Registry)
	}
	for _, s := range a.Secrets {
		if s.Name == "other.io" {
			t.Fatal("the login of a host the task does not pull from reached the node")
		}
	}

	if _, err := admin.RegistryLogout(ctx, "other.io"); err != nil {
		t.Fatal(err)
	}
	_, err = admin.RegistryLogout(ctx, "other.io")
	wantErr(t, err, http.StatusNotFound, `registry login "other.io" not found`)
}
