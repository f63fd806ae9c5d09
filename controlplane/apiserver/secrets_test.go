package apiserver

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"reflect"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/secretbox"
	"github.com/warrenhq/warren/controlplane/store"
)

// snapshotHolds reports whether the store's snapshot holds b raw, in
// base64 or in hex: the forms a value could leak in through JSON.
func snapshotHolds(t *testing.T, st *store.Store, b []byte) bool {
	t.Helper()
	var buf bytes.Buffer
	if err := st.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	s := buf.Bytes()
	return bytes.Contains(s, b) || bytes.Contains(s, []byte(base64.StdEncoding.EncodeToString(b))) ||
		bytes.Contains(s, []byte(hex.EncodeToString(b)))
}

func TestSecretValidationChangesNothing(t *testing.T) {
	c := newCluster(t)
	srv := c.serve(t, c.newServer(t, c.backend(t, "m1", true)).Handler())
	admin := c.client(t, "admin", hostOf(srv))
	ctx := t.Context()
	before := c.st.Index()

	for _, tc := range []struct {
		kind api.SecretKind
		name string
		data []byte
		want string
	}{
		{api.KindSecret, "", []byte("x"), "secret name: must not be empty"},
		{api.KindSecret, "a/b", []byte("x"), `secret name "a/b": must not contain "/"`},
		{api.KindConfig, "a..b", []byte("x"), `config name "a..b": must not contain ".."`},
		{api.KindSecret, ".", []byte("x"), `secret name ".": not a file name`},
		{api.KindSecret, "a b", []byte("x"), `secret name "a b": ' ' is not allowed`},
		{api.KindSecret, "ok", nil, `secret "ok": value is empty`},
		{api.KindSecret, "big", bytes.Repeat([]byte{1}, 500<<10+1), "over the limit of 500 KiB"},
		{api.KindConfig, "big", bytes.Repeat([]byte{1}, 1000<<10+1), "over the limit of 1000 KiB"},
	} {
		_, err := admin.CreateSecret(ctx, tc.kind, client.SecretCreateRequest{Name: tc.name, Data: tc.data})
		wantErr(t, err, http.StatusBadRequest, tc.want)
	}
	// At the limit is fine.
	if _, err := admin.CreateSecret(ctx, api.KindSecret, client.SecretCreateRequest{Name: "max", Data: bytes.Repeat([]byte{1}, 500<<10)}); err != nil {
		t.Fatal(err)
	}
	if c.st.Index() != before+1 {
		t.Fatalf("refused requests changed the store: index %d → %d", before, c.st.Index())
	}
	_, err := admin.CreateSecret(ctx, api.KindSecret, client.SecretCreateRequest{Name: "max", Data: []byte("x")})
	wantErr(t, err, http.StatusConflict, `secret "max": name already used`)
}

func TestSecretsLifecycle(t *testing.T) {
	c := newCluster(t)
	srv := c.serve(t, c.newServer(t, c.backend(t, "m1", true)).Handler())
	admin := c.client(t, "admin", hostOf(srv))
	ctx := t.Context()
	marker := []byte("marker-7f3a9c1e0b5d")

	res, err := admin.CreateSecret(ctx, api.KindSecret, client.SecretCreateRequest{Name: "db", Labels: map[string]string{"a": "b"}, Data: marker})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateSecret(ctx, api.KindConfig, client.SecretCreateRequest{Name: "app.conf", Data: []byte("port=80\n")}); err != nil {
		t.Fatal(err)
	}
	if snapshotHolds(t, c.st, marker) {
		t.Fatal("the store holds the secret value in clear")
	}
	if c.st.View().Cluster().Keys.WrappedDEK == nil {
		t.Fatal("no wrapped data key in the cluster object")
	}
	info, err := admin.Secret(ctx, api.KindSecret, "db")
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != res.ID || info.Size != len(marker) || info.Data != nil || info.Spec.Labels["a"] != "b" {
		t.Fatalf("secret inspect = %+v (must never carry the value)", info)
	}
	cfg, err := admin.Secret(ctx, api.KindConfig, "app.conf")
	if err != nil || string(cfg.Data) != "port=80\n" {
		t.Fatalf("config inspect = %+v, %v (a config's value is shown)", cfg, err)
	}
	ls, err := admin.Secrets(ctx, api.KindSecret)
	if err != nil || len(ls) != 1 || ls[0].Data != nil {
		t.Fatalf("secret ls = %+v, %v", ls, err)
	}

	// A service must name existing secrets; defaults are filled.
	spec := webSpec("web", 0)
	spec.Task.Container.Secrets = []api.SecretRef{{Name: "nope"}}
	_, err = admin.CreateService(ctx, spec)
	wantErr(t, err, http.StatusBadRequest, `service "web": secret "nope" not found`)
	spec.Task.Container.Secrets = []api.SecretRef{{Name: "db"}, {Name: "db", Target: "/run/secrets/db"}}
	_, err = admin.CreateService(ctx, spec)
	wantErr(t, err, http.StatusBadRequest, "both mount at /run/secrets/db")
	spec.Task.Container.Secrets = []api.SecretRef{{Name: "db", Restart: true}}
	spec.Task.Container.Configs = []api.SecretRef{{Name: "app.conf", UID: 33, Mode: 0o440}}
	if _, err := admin.CreateService(ctx, spec); err != nil {
		t.Fatal(err)
	}
	svc, _ := admin.Service(ctx, "web")
	want := api.SecretRef{ID: res.ID, Name: "db", Target: "/run/secrets/db", Mode: 0o444, Restart: true, Rotation: 1}
	if got := svc.Spec.Task.Container.Secrets[0]; got != want {
		t.Fatalf("stored secret ref = %+v, want %+v", got, want)
	}
	if got := svc.Spec.Task.Container.Configs[0]; got.Target != "/app.conf" || got.UID != 33 || got.Mode != 0o440 {
		t.Fatalf("stored config ref = %+v", got)
	}

	// rm in use is refused, naming the service, and changes nothing.
	before := c.st.Index()
	_, err = admin.RemoveSecret(ctx, api.KindSecret, "db")
	wantErr(t, err, http.StatusConflict, `secret "db" is in use by service web`)
	if c.st.Index() != before {
		t.Fatal("a refused rm changed the store")
	}

	// A new value with restart=true rolls the service (new SpecVersion).
	if _, err := admin.UpdateSecret(ctx, api.KindSecret, "db", client.SecretUpdateRequest{Data: []byte("second-value")}); err != nil {
		t.Fatal(err)
	}
	next, _ := admin.Service(ctx, "web")
	if next.SpecVersion != svc.SpecVersion+1 {
		t.Fatalf("spec version %d → %d after a restart=true secret update", svc.SpecVersion, next.SpecVersion)
	}
	// The task template itself must change: an equal template counts as
	// current and would not be rolled (orchestrator.current).
	if reflect.DeepEqual(next.Spec.Task, svc.Spec.Task) || next.Spec.Task.Container.Secrets[0].Rotation != 2 {
		t.Fatalf("restart=true update left the task template as it was: %+v", next.Spec.Task.Container.Secrets)
	}
	if next.PreviousSpec == nil || next.PreviousSpec.Task.Container.Secrets[0].Rotation != 1 {
		t.Fatal("the previous spec is not kept for rollback")
	}
	// A config update without restart leaves the service alone.
	if _, err := admin.UpdateSecret(ctx, api.KindConfig, "app.conf", client.SecretUpdateRequest{Data: []byte("port=81\n")}); err != nil {
		t.Fatal(err)
	}
	if again, _ := admin.Service(ctx, "web"); again.SpecVersion != next.SpecVersion {
		t.Fatal("a config update without restart=true rolled the service")
	}
	_, err = admin.UpdateSecret(ctx, api.KindSecret, "db", client.SecretUpdateRequest{Data: bytes.Repeat([]byte{1}, 600<<10)})
	wantErr(t, err, http.StatusBadRequest, "over the limit of 500 KiB")

	if _, err := admin.RemoveService(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RemoveSecret(ctx, api.KindSecret, "db"); err != nil {
		t.Fatal(err)
	}
	_, err = admin.Secret(ctx, api.KindSecret, "db")
	wantErr(t, err, http.StatusNotFound, `secret "db" not found`)
}

// A node gets the values its own running tasks mount, sealed under its own
// cache key, and nothing else.
func TestAssignmentsCarryOnlyTheNodesSecrets(t *testing.T) {
	c := newCluster(t)
	srv := c.serve(t, c.newServer(t, c.backend(t, "m1", true)).Handler())
	admin := c.client(t, "admin", hostOf(srv))
	worker := c.client(t, "worker", hostOf(srv))
	manager := c.client(t, "manager", hostOf(srv))
	ctx := t.Context()

	mine, err := admin.CreateSecret(ctx, api.KindSecret, client.SecretCreateRequest{Name: "mine", Data: []byte("value-for-w1")})
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := admin.CreateSecret(ctx, api.KindSecret, client.SecretCreateRequest{Name: "theirs", Data: []byte("value-for-m1")})
	if err != nil {
		t.Fatal(err)
	}
	task := func(id, node, secretID string, desired api.TaskState) api.Task {
		return api.Task{ID: id, ServiceID: "s", NodeID: node, DesiredState: desired,
			Spec: api.TaskSpec{Container: api.ContainerSpec{Secrets: []api.SecretRef{{ID: secretID, Name: "x", Target: "/run/secrets/x"}}}}}
	}
	c.apply(t, &store.Batch{PutTasks: []api.Task{
		task("t1", "w1", mine.ID, api.TaskRunning),
		task("t2", "m1", theirs.ID, api.TaskRunning),
		task("t3", "w1", theirs.ID, api.TaskShutdown), // stopping: no longer needs it
	}})
	a, err := worker.Assignments(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Secrets) != 1 || a.Secrets[0].ID != mine.ID || len(a.CacheKey) != secretbox.KeySize {
		t.Fatalf("w1 got secrets %+v, cache key %d bytes", a.Secrets, len(a.CacheKey))
	}
	if bytes.Contains(a.Secrets[0].Sealed, []byte("value-for-w1")) {
		t.Fatal("value travels in clear inside the assignment")
	}
	got, err := secretbox.Open(a.CacheKey, a.Secrets[0].Sealed, secretbox.ValueAAD("secret", mine.ID))
	if err != nil || string(got) != "value-for-w1" {
		t.Fatalf("open with the node's cache key = %q, %v", got, err)
	}
	b, err := manager.Assignments(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Secrets) != 1 || b.Secrets[0].ID != theirs.ID || bytes.Equal(b.CacheKey, a.CacheKey) {
		t.Fatalf("m1 got %+v; cache keys equal: %v", b.Secrets, bytes.Equal(b.CacheKey, a.CacheKey))
	}
	if _, err := secretbox.Open(a.CacheKey, b.Secrets[0].Sealed, secretbox.ValueAAD("secret", theirs.ID)); err == nil {
		t.Fatal("w1's cache key opens m1's value")
	}
}
