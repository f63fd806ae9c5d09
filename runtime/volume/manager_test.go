//go:build linux

package volume

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

func volTask(id string, atts []api.VolumeAttachment, mounts ...api.Mount) *api.Task {
	return &api.Task{ID: id, Volumes: atts, Spec: api.TaskSpec{Container: api.ContainerSpec{Mounts: mounts}}}
}

func newTestManager(t *testing.T) (*Manager, string) {
	dir := t.TempDir()
	plugins := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	return NewManager(Options{Dir: filepath.Join(dir, "volumes"), PluginDir: plugins, NodeID: "n1",
		Timeouts: Timeouts{Mount: 500 * time.Millisecond, Unmount: 500 * time.Millisecond}}), plugins
}

func TestLocalVolumeMountAndPopulate(t *testing.T) {
	m, _ := newTestManager(t)
	// An image whose data dir is owned and restricted like postgres's, and
	// reached through an absolute symlink that must resolve inside the image.
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "srv/pgdata/sub"), 0o755))
	must(os.WriteFile(filepath.Join(root, "srv/pgdata/PG_VERSION"), []byte("16\n"), 0o600))
	must(os.WriteFile(filepath.Join(root, "srv/pgdata/sub/f"), []byte("x"), 0o640))
	must(os.Symlink("PG_VERSION", filepath.Join(root, "srv/pgdata/link")))
	must(os.Chmod(filepath.Join(root, "srv/pgdata"), 0o700))
	must(os.MkdirAll(filepath.Join(root, "var/lib"), 0o755))
	must(os.Symlink("/srv/pgdata", filepath.Join(root, "var/lib/postgresql")))
	if os.Geteuid() == 0 {
		must(os.Chown(filepath.Join(root, "srv/pgdata"), 999, 998))
		must(os.Chown(filepath.Join(root, "srv/pgdata/PG_VERSION"), 999, 998))
	}
	rootfs := func(_ context.Context, fn func(string) error) error { return fn(root) }

	task := volTask("t1", nil, api.Mount{Type: api.MountVolume, Source: "db", Target: "/var/lib/postgresql"})
	must(m.Mount(t.Context(), task))
	must(m.Populate(t.Context(), task, rootfs))
	vol := m.Path("db")
	b, err := os.ReadFile(filepath.Join(vol, "PG_VERSION"))
	if err != nil || string(b) != "16\n" {
		t.Fatalf("copied PG_VERSION = %q, %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(vol, "link")); err != nil || l != "PG_VERSION" {
		t.Fatalf("symlink = %q, %v", l, err)
	}
	fi, err := os.Stat(vol)
	must(err)
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("volume root mode = %v, want the image directory's 0700", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(filepath.Join(vol, "sub/f")); fi == nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("sub/f = %v", fi)
	}
	if os.Geteuid() == 0 {
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 999 || st.Gid != 998 {
			t.Fatalf("volume root owner = %d:%d, want the image directory's 999:998", st.Uid, st.Gid)
		}
	}
	// The data is the task's from now on: a second populate (a restart, a
	// replacement) copies nothing over it.
	must(os.WriteFile(filepath.Join(vol, "PG_VERSION"), []byte("changed"), 0o600))
	must(m.Populate(t.Context(), task, rootfs))
	if b, _ := os.ReadFile(filepath.Join(vol, "PG_VERSION")); string(b) != "changed" {
		t.Fatalf("populate overwrote a used volume: %q", b)
	}
	if u := m.Users("db"); len(u) != 1 || u[0] != "t1" {
		t.Fatalf("users = %v", u)
	}
	must(m.Release(t.Context(), task))
	if _, err := os.Stat(filepath.Join(vol, "PG_VERSION")); err != nil {
		t.Fatalf("release of a local volume lost its data: %v", err)
	}

	// volume-nocopy: an empty new volume stays empty.
	nocopy := volTask("t2", nil, api.Mount{Type: api.MountVolume, Source: "empty", Target: "/srv/pgdata", NoCopy: true})
	must(m.Mount(t.Context(), nocopy))
	must(m.Populate(t.Context(), nocopy, rootfs))
	if empty, err := isEmptyDir(m.Path("empty")); err != nil || !empty {
		t.Fatalf("volume-nocopy volume not empty (%v)", err)
	}
}

func TestResolveInStaysInsideRoot(t *testing.T) {
	root := t.TempDir()
	_ = os.MkdirAll(filepath.Join(root, "a"), 0o755)
	_ = os.Symlink("/etc", filepath.Join(root, "a/etc"))
	_ = os.Symlink("../../../../..", filepath.Join(root, "a/up"))
	for in, want := range map[string]string{
		"/a/etc/passwd": filepath.Join(root, "etc/passwd"),
		"/a/up/x":       filepath.Join(root, "x"),
		"/../../x":      filepath.Join(root, "x"),
	} {
		got, err := resolveIn(root, in)
		if err != nil || got != want {
			t.Errorf("resolveIn(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
	_ = os.Symlink("loop", filepath.Join(root, "loop"))
	if _, err := resolveIn(root, "/loop/x"); err == nil {
		t.Error("a symlink loop resolved")
	}
}

func TestMountErrorsAreClearAndLeaveNothing(t *testing.T) {
	m, plugins := newTestManager(t)
	att := func(driver string) []api.VolumeAttachment {
		return []api.VolumeAttachment{{Name: "r", Driver: driver, Scope: api.ScopeMultiNode}}
	}
	mnt := api.Mount{Type: api.MountVolume, Source: "r", Target: "/data"}

	err := m.Mount(t.Context(), volTask("t1", att("nfs"), mnt))
	if !errors.Is(err, ErrUnknownDriver) || !strings.Contains(err.Error(), "volume r: volume driver \"nfs\"") {
		t.Fatalf("unknown driver: %v", err)
	}
	writePlugin(t, plugins, "liar", `exit 0`)
	err = m.Mount(t.Context(), volTask("t1", att("liar"), mnt))
	if err == nil || !strings.Contains(err.Error(), "volume r: mount: driver reported success but nothing is mounted at") {
		t.Fatalf("plugin that mounts nothing: %v", err)
	}
	writePlugin(t, plugins, "broken", `[ "$1" = mount ] && { echo '{"error":"connection refused"}'; exit 2; }; exit 0`)
	err = m.Mount(t.Context(), volTask("t1", att("broken"), mnt))
	if err == nil || !strings.Contains(err.Error(), "volume r: mount: volume plugin broken mount r: exit status 2: connection refused") {
		t.Fatalf("failing plugin: %v", err)
	}
	if u := m.Users("r"); len(u) != 0 {
		t.Fatalf("a failed mount recorded users %v", u)
	}
	err = m.Mount(t.Context(), volTask("t1", []api.VolumeAttachment{{Name: "a/b", Driver: "local"}}, api.Mount{Type: api.MountVolume, Source: "a/b", Target: "/d"}))
	if err == nil || !strings.Contains(err.Error(), "must not contain '/'") {
		t.Fatalf("bad name: %v", err)
	}
}

// TestPluginMountLifecycleAsRoot runs a plugin that really mounts (tmpfs):
// mount is idempotent, the last user's release unmounts, and a plugin that
// mounts and then hangs is killed and leaves no mount behind.
func TestPluginMountLifecycleAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	m, plugins := newTestManager(t)
	writePlugin(t, plugins, "tmp", `req=$(cat)
target=$(echo "$req" | sed -n 's/.*"target":"\([^"]*\)".*/\1/p')
case "$1" in
mount) mountpoint -q "$target" || mount -t tmpfs tmpfs "$target" ;;
unmount) umount "$target" 2>/dev/null; exit 0 ;;
capabilities) echo '{"scope":"multi-node","access":["single-writer"]}' ;;
esac`)
	writePlugin(t, plugins, "hang", `req=$(cat)
target=$(echo "$req" | sed -n 's/.*"target":"\([^"]*\)".*/\1/p')
[ "$1" = mount ] && { mount -t tmpfs tmpfs "$target"; sleep 1000; }; exit 0`)
	att := []api.VolumeAttachment{{Name: "r", Driver: "tmp", Scope: api.ScopeMultiNode}}
	mnt := api.Mount{Type: api.MountVolume, Source: "r", Target: "/data"}
	t1, t2 := volTask("t1", att, mnt), volTask("t2", att, mnt)
	for _, tk := range []*api.Task{t1, t2, t1} {
		if err := m.Mount(t.Context(), tk); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := isMountpoint(m.Path("r")); !ok || err != nil {
		t.Fatalf("not mounted: %v", err)
	}
	if err := os.WriteFile(filepath.Join(m.Path("r"), "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Release(t.Context(), t1); err != nil {
		t.Fatal(err)
	}
	if ok, _ := isMountpoint(m.Path("r")); !ok {
		t.Fatal("unmounted while t2 still uses it")
	}
	if err := m.Release(t.Context(), t2); err != nil {
		t.Fatal(err)
	}
	if ok, _ := isMountpoint(m.Path("r")); ok {
		t.Fatal("still mounted after the last user left")
	}
	// "hang" answers capabilities with nothing (no scope): it is left out.
	if ds := m.Drivers(t.Context()); len(ds) != 1 || ds[0].Name != "tmp" || ds[0].Scope != api.ScopeMultiNode {
		t.Fatalf("drivers = %+v, want only tmp (multi-node)", ds)
	}

	hung := volTask("t3", []api.VolumeAttachment{{Name: "h", Driver: "hang", Scope: api.ScopeMultiNode}}, api.Mount{Type: api.MountVolume, Source: "h", Target: "/data"})
	err := m.Mount(t.Context(), hung)
	if err == nil || !strings.Contains(err.Error(), "no answer within 500ms (killed)") {
		t.Fatalf("hanging plugin: %v", err)
	}
	if ok, _ := isMountpoint(m.Path("h")); ok {
		_ = detach(m.Path("h"))
		t.Fatal("the hung plugin's mount was left behind")
	}
}
