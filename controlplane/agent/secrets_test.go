package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/secretbox"
	"github.com/warrenhq/warren/controlplane/testutil"
)

func TestSecretLayout(t *testing.T) {
	task := api.Task{ID: "t1", Spec: api.TaskSpec{Container: api.ContainerSpec{
		Secrets: []api.SecretRef{
			{ID: "s1", Name: "db", Target: "/run/secrets/db", Mode: 0o444},
			{ID: "s2", Name: "tls", Target: "/run/secrets/certs/tls.key", UID: 33, GID: 34, Mode: 0o400},
			{ID: "s3", Name: "token", Target: "/etc/app/token", Mode: 0o440},
		},
		Configs: []api.SecretRef{{ID: "c1", Name: "app.conf", Target: "/app.conf", Mode: 0o444}},
	}}}
	values := map[string][]byte{"secret/s1": []byte("a"), "secret/s2": []byte("b"), "secret/s3": []byte("c"), "config/c1": []byte("d")}
	files, mounts, missing := secretLayout(task, "/tmpfs/t1", values)
	if len(missing) != 0 {
		t.Fatalf("missing %v", missing)
	}
	wantFiles := []SecretFile{
		{Path: "run-secrets/db", Data: []byte("a"), Mode: 0o444},
		{Path: "run-secrets/certs/tls.key", Data: []byte("b"), UID: 33, GID: 34, Mode: 0o400},
		{Path: "files/1/token", Data: []byte("c"), Mode: 0o440, InPlace: true},
		{Path: "files/2/app.conf", Data: []byte("d"), Mode: 0o444, InPlace: true},
	}
	if !reflect.DeepEqual(files, wantFiles) {
		t.Fatalf("files =\n%+v\nwant\n%+v", files, wantFiles)
	}
	wantMounts := []api.Mount{
		{Type: api.MountBind, Source: "/tmpfs/t1/run-secrets", Target: "/run/secrets", ReadOnly: true},
		{Type: api.MountBind, Source: "/tmpfs/t1/files/1/token", Target: "/etc/app/token", ReadOnly: true},
		{Type: api.MountBind, Source: "/tmpfs/t1/files/2/app.conf", Target: "/app.conf", ReadOnly: true},
	}
	if !reflect.DeepEqual(mounts, wantMounts) {
		t.Fatalf("mounts =\n%+v\nwant\n%+v", mounts, wantMounts)
	}
	delete(values, "config/c1")
	if _, _, missing := secretLayout(task, "/x", values); !slices.Equal(missing, []string{`config "app.conf"`}) {
		t.Fatalf("missing = %v", missing)
	}
}

// memFS is a SecretFS in memory.
type memFS struct {
	mu    sync.Mutex
	files map[string][]SecretFile
	sets  int
}

func (m *memFS) Set(files map[string][]SecretFile, keep []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := map[string][]SecretFile{}
	for id, fs := range files {
		cp := make([]SecretFile, len(fs))
		for i, f := range fs {
			f.Data = bytes.Clone(f.Data)
			cp[i] = f
		}
		next[id] = cp
	}
	for _, id := range keep {
		if fs, ok := m.files[id]; ok {
			next[id] = fs
		}
	}
	m.files = next
	m.sets++
	return nil
}
func (m *memFS) TaskDir(id string) string { return "/tmpfs/" + id }
func (m *memFS) Has(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.files[id]
	return ok
}
func (m *memFS) data(id string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if fs := m.files[id]; len(fs) > 0 {
		return string(fs[0].Data)
	}
	return ""
}

func startWithSecrets(t *testing.T, dir string, m Manager, rec *recorder, fs SecretFS) (*Agent, func()) {
	t.Helper()
	a, err := New(Config{
		NodeID: "n1", DataDir: dir, Manager: m, Executor: rec, Network: rec, Secrets: fs,
		Registration: func() api.NodeRegistration { return api.NodeRegistration{} },
		Heartbeat:    20 * time.Millisecond, Wait: 200 * time.Millisecond,
		RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done; a.Close() }) }
	t.Cleanup(stop)
	return a, stop
}

func sealedAssignments(t *testing.T, index uint64, key []byte, value string) api.Assignments {
	t.Helper()
	sealed, err := secretbox.Seal(key, []byte(value), secretbox.ValueAAD("secret", "s1"), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a := assignments(index, nil, "t1", "t2")
	a.Tasks[0].Spec.Container.Secrets = []api.SecretRef{{ID: "s1", Name: "db", Target: "/run/secrets/db", Mode: 0o444}}
	a.Secrets = []api.SecretValue{{ID: "s1", Kind: api.KindSecret, Name: "db", Version: index, Sealed: sealed}}
	a.CacheKey = key
	return a
}

func TestSecretsReachTheTmpfsNotTheCache(t *testing.T) {
	dir := t.TempDir()
	key, _ := secretbox.NewKey(rand.Reader)
	f := newFakeManager(t, sealedAssignments(t, 5, key, "marker-v1-5a8e"))
	fs := &memFS{}
	rec := &recorder{}
	_, stop := startWithSecrets(t, dir, newClient(t, f, f.addr()), rec, fs)
	testutil.Eventually(t, "the secret is on the tmpfs and the task has its mount", 15*time.Second, func() bool {
		ts, ok := rec.lastTasks()
		return ok && len(ts) == 2 && fs.data("t1") == "marker-v1-5a8e" && len(ts[0].Spec.Container.Mounts) == 1
	})
	ts, _ := rec.lastTasks()
	if m := ts[0].Spec.Container.Mounts[0]; m.Source != "/tmpfs/t1/run-secrets" || m.Target != "/run/secrets" || !m.ReadOnly {
		t.Fatalf("mount = %+v", m)
	}
	if len(ts[1].Spec.Container.Mounts) != 0 || fs.Has("t2") {
		t.Fatal("a task without secrets got secret files")
	}
	// A new value is rewritten for the running task.
	f.publish(sealedAssignments(t, 6, key, "marker-v2-77c1"))
	testutil.Eventually(t, "the new value replaces the old", 15*time.Second, func() bool { return fs.data("t1") == "marker-v2-77c1" })
	stop()

	db, err := os.ReadFile(filepath.Join(dir, CacheFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{[]byte("marker-v1"), []byte("marker-v2"), key} {
		if bytes.Contains(db, bad) {
			t.Fatalf("the agent cache holds %q in clear", bad)
		}
	}

	// Restarted with no manager: the cache has sealed values but no key.
	// With its files still on the tmpfs (an agent restart) the task runs on.
	f.setDown(true)
	rec2 := &recorder{}
	startWithSecrets(t, dir, newClient(t, f, f.addr()), rec2, fs)
	testutil.Eventually(t, "the cached task keeps its tmpfs files", 15*time.Second, func() bool {
		ts, ok := rec2.lastTasks()
		return ok && slices.Equal(taskIDs(ts), []string{"t1", "t2"})
	})
	if fs.data("t1") != "marker-v2-77c1" {
		t.Fatal("files of a kept task changed")
	}
}

// After a reboot (tmpfs empty) without a manager, a task needing a secret
// is held back; the rest start. The manager's answer brings the key.
func TestOfflineRebootStartsOnlyTasksWithoutSecrets(t *testing.T) {
	dir := t.TempDir()
	key, _ := secretbox.NewKey(rand.Reader)
	f := newFakeManager(t, sealedAssignments(t, 5, key, "v1"))
	rec := &recorder{}
	_, stop := startWithSecrets(t, dir, newClient(t, f, f.addr()), rec, &memFS{})
	testutil.Eventually(t, "applied", 15*time.Second, func() bool { ts, ok := rec.lastTasks(); return ok && len(ts) == 2 })
	stop()

	f.setDown(true)
	fs := &memFS{} // a reboot emptied the tmpfs
	rec2 := &recorder{}
	startWithSecrets(t, dir, newClient(t, f, f.addr()), rec2, fs)
	testutil.Eventually(t, "only the task without secrets starts", 15*time.Second, func() bool {
		ts, ok := rec2.lastTasks()
		return ok && slices.Equal(taskIDs(ts), []string{"t2"})
	})
	f.setDown(false)
	f.publish(sealedAssignments(t, 6, key, "v1"))
	testutil.Eventually(t, "the task starts once a manager answered", 15*time.Second, func() bool {
		ts, ok := rec2.lastTasks()
		return ok && slices.Equal(taskIDs(ts), []string{"t1", "t2"}) && fs.data("t1") == "v1"
	})
}

// A node without a secret store runs everything but the tasks that mount
// secrets.
func TestNoSecretStoreHoldsBackOnlySecretTasks(t *testing.T) {
	key, _ := secretbox.NewKey(rand.Reader)
	f := newFakeManager(t, sealedAssignments(t, 5, key, "v1"))
	rec := &recorder{}
	startWithSecrets(t, t.TempDir(), newClient(t, f, f.addr()), rec, nil)
	testutil.Eventually(t, "the task without secrets runs", 15*time.Second, func() bool {
		ts, ok := rec.lastTasks()
		return ok && slices.Equal(taskIDs(ts), []string{"t2"})
	})
}
