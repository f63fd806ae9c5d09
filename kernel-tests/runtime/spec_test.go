//go:build linux

package runtimetest

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/warrenhq/warren/controlplane/api"
	wrt "github.com/warrenhq/warren/runtime"
)

// TestSpecRoundTrip gives a task every ContainerSpec field, runs it, reads
// the spec and labels back from containerd and compares each field with a
// literal expectation (not with SpecFor, which would compare the code with
// itself). Earlier attempts silently dropped fields.
func TestSpecRoundTrip(t *testing.T) {
	f := newFixture(t)
	ex := f.executor()
	ctx := context.Background()

	bindSrc := t.TempDir()
	// World-writable, so only the read-only mount can stop user 65534 writing.
	if err := os.Chmod(bindSrc, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bindSrc, "hello"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	task := api.Task{
		ID: "kt-spec", ServiceID: "svc-spec", ServiceName: "spec", NodeID: "node-kt", Slot: 3, Version: "v7",
		DesiredState: api.TaskRunning,
		Spec: api.TaskSpec{
			Container: api.ContainerSpec{
				Image:    demoRef,
				Command:  []string{"/app"},
				Args:     []string{},
				Env:      []string{"PORT=8081", "WARREN_DEMO_VERSION=v7", "FOO=bar"},
				Dir:      "/tmp",
				User:     "65534:65534",
				Hostname: "spec-host",
				Labels:   map[string]string{"team": "edge", "tier": "front"},
				Mounts: []api.Mount{
					{Type: api.MountBind, Source: bindSrc, Target: "/data", ReadOnly: true},
					{Type: api.MountTmpfs, Target: "/scratch", TmpfsSize: 1 << 20},
				},
				StopSignal: "SIGINT",
				StopGrace:  api.Duration(3 * time.Second),
				ReadOnly:   true,
			},
			Resources: api.ResourceReqs{Limits: api.Resources{NanoCPUs: 250_000_000, MemoryBytes: 32 << 20, Pids: 20}},
		},
	}
	ctl, err := ex.Controller(&task, wrt.ControllerOptions{LogPath: filepath.Join(f.dataDir, "spec.log")})
	if err != nil {
		t.Fatal(err)
	}
	if err := ctl.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ctl.Remove(context.Background()) })
	if err := ctl.Start(ctx); err != nil {
		t.Fatal(err)
	}

	nctx := namespaces.WithNamespace(ctx, ex.Namespace())
	c, err := ex.Client().LoadContainer(nctx, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Spec(nctx)
	if err != nil {
		t.Fatal(err)
	}
	check := func(field string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: containerd has %#v, want %#v", field, got, want)
		}
	}
	check("args", s.Process.Args, []string{"/app"})
	check("env", s.Process.Env, []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"PORT=8081", "WARREN_DEMO_VERSION=v7", "FOO=bar",
	})
	check("cwd", s.Process.Cwd, "/tmp")
	check("uid", s.Process.User.UID, uint32(65534))
	check("gid", s.Process.User.GID, uint32(65534))
	check("hostname", s.Hostname, "spec-host")
	check("readonly rootfs", s.Root.Readonly, true)
	check("memory limit", *s.Linux.Resources.Memory.Limit, int64(32<<20))
	check("cpu quota", *s.Linux.Resources.CPU.Quota, int64(25000))
	check("cpu period", *s.Linux.Resources.CPU.Period, uint64(100000))
	check("pids", *s.Linux.Resources.Pids.Limit, int64(20))
	check("cgroups path", s.Linux.CgroupsPath, "/"+f.parent+"/kt-spec")
	mounts := map[string]specs.Mount{}
	for _, m := range s.Mounts {
		mounts[m.Destination] = m
	}
	check("bind mount", mounts["/data"], specs.Mount{Destination: "/data", Type: "bind", Source: bindSrc, Options: []string{"rbind", "rprivate", "ro"}})
	check("tmpfs mount", mounts["/scratch"], specs.Mount{Destination: "/scratch", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777", "rw", "size=1048576"}})
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace && ns.Path != "" {
			t.Errorf("network namespace has path %q; want a new one", ns.Path)
		}
	}
	labels, err := c.Labels(nctx)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"team": "edge", "tier": "front",
		wrt.LabelTaskID: "kt-spec", wrt.LabelServiceID: "svc-spec", wrt.LabelServiceName: "spec",
		wrt.LabelNodeID: "node-kt", wrt.LabelSlot: "3", wrt.LabelVersion: "v7",
		wrt.LabelStopSignal: "SIGINT", wrt.LabelStopGrace: "3s",
	} {
		check("label "+k, labels[k], v)
	}
	info, err := c.Info(nctx)
	if err != nil {
		t.Fatal(err)
	}
	check("image", info.Image, "docker.io/warren/demo:v1")

	// The kernel sees it too: the mounts behave as specified.
	if code := execCode(t, ex, task.ID, "/app", "touch", "/scratch/x"); code != 0 {
		t.Errorf("tmpfs /scratch not writable: exit %d", code)
	}
	if code := execCode(t, ex, task.ID, "/app", "touch", "/data/x"); code == 0 {
		t.Errorf("read-only bind /data was writable")
	}
	if code := execCode(t, ex, task.ID, "/app", "touch", "/tmp/x"); code == 0 { // /tmp is 1777 in the image
		t.Errorf("read-only rootfs was writable")
	}

	// The stop signal is used: the demo server exits 0 on SIGINT well
	// within the grace period, so no SIGKILL (exit 137) is needed.
	start := time.Now()
	if err := ctl.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("shutdown with SIGINT took %v (grace 3s)", time.Since(start))
	tk, err := c.Task(nctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := tk.Status(nctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.ExitStatus != 0 {
		t.Errorf("exit status after SIGINT %d, want 0 (a SIGKILL would give 137)", st.ExitStatus)
	}

	// A user name is resolved from the image's /etc/passwd.
	named := task
	named.ID = "kt-spec-named"
	named.Spec.Container.User = "nobody"
	named.Spec.Container.Mounts = nil
	ctl2, err := ex.Controller(&named, wrt.ControllerOptions{LogPath: filepath.Join(f.dataDir, "spec2.log")})
	if err != nil {
		t.Fatal(err)
	}
	if err := ctl2.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ctl2.Remove(context.Background()) })
	c2, err := ex.Client().LoadContainer(nctx, named.ID)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := c2.Spec(nctx)
	if err != nil {
		t.Fatal(err)
	}
	check("named user uid", s2.Process.User.UID, uint32(65534))
	if !slices.Contains(s2.Process.Env, "FOO=bar") {
		t.Errorf("env lost on second container: %v", s2.Process.Env)
	}
}
