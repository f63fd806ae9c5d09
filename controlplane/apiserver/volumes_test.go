package apiserver

import (
	"net/http"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/store"
)

func TestVolumeLifecycleAndValidation(t *testing.T) {
	c := newCluster(t)
	srv := c.serve(t, c.newServer(t, c.backend(t, "m1", true)).Handler())
	admin := c.client(t, "admin", hostOf(srv))
	ctx := t.Context()

	// Bad input is refused with a clear error and nothing is stored.
	bad := []struct {
		spec   api.VolumeSpec
		status int
		want   string
	}{
		{api.VolumeSpec{Name: "a/b"}, http.StatusBadRequest, `volume name "a/b": must not contain '/'`},
		{api.VolumeSpec{Name: "-x"}, http.StatusBadRequest, `volume name "-x": must start with a letter or digit`},
		{api.VolumeSpec{Name: "db", Driver: "nfs"}, http.StatusBadRequest, `volume "db": driver "nfs": unknown; no node reports it (known: local)`},
		{api.VolumeSpec{Name: "db", Scope: api.ScopeMultiNode}, http.StatusBadRequest, `volume "db": scope: driver local keeps data on one node`},
		{api.VolumeSpec{Name: "db", Node: "nowhere"}, http.StatusBadRequest, `volume "db": node: node "nowhere" not found`},
		{api.VolumeSpec{Name: "db", Constraints: []string{"node.bogus==1"}}, http.StatusBadRequest, `volume "db": constraints[0]:`},
		{api.VolumeSpec{Name: "db", Opts: map[string]string{"size": "1G"}}, http.StatusBadRequest, `volume "db": opts: the local driver takes none`},
	}
	for _, b := range bad {
		_, err := admin.CreateVolume(ctx, b.spec)
		wantErr(t, err, b.status, b.want)
	}
	if vs, _ := admin.Volumes(ctx); len(vs) != 0 {
		t.Fatalf("refused creates stored %+v", vs)
	}

	vol, err := admin.CreateVolume(ctx, api.VolumeSpec{Name: "db-data", Node: "worker-1", Labels: map[string]string{"app": "pg"}})
	if err != nil {
		t.Fatal(err)
	}
	if vol.Spec.Driver != api.LocalDriver || vol.Spec.Scope != api.ScopeSingleNode || vol.Spec.Node != "w1" ||
		vol.Status.Node != "w1" || vol.Spec.Access != api.AccessSingleWriter || vol.Meta.Version == 0 {
		t.Fatalf("created volume = %+v", vol)
	}
	_, err = admin.CreateVolume(ctx, api.VolumeSpec{Name: "db-data"})
	wantErr(t, err, http.StatusConflict, `volume "db-data": already exists`)

	// A driver becomes known when a node reports it.
	n, _ := c.st.View().Node("w1")
	n.Status.VolumeDrivers = []api.VolumeDriverInfo{{Name: "sshfs", Scope: api.ScopeMultiNode, Access: []api.VolumeAccess{api.AccessSingleWriter, api.AccessMultiWriter}}}
	c.apply(t, &store.Batch{PutNodes: []api.Node{n}})
	remote, err := admin.CreateVolume(ctx, api.VolumeSpec{Name: "shared", Driver: "sshfs", Opts: map[string]string{"host": "10.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if remote.Spec.Scope != api.ScopeMultiNode {
		t.Fatalf("sshfs volume scope = %q, want multi-node from the driver", remote.Spec.Scope)
	}
	_, err = admin.CreateVolume(ctx, api.VolumeSpec{Name: "ro", Driver: "sshfs", Access: api.AccessMultiReader})
	wantErr(t, err, http.StatusBadRequest, `volume "ro": access multi-reader: driver sshfs supports only`)

	// Services: replicas > 1 on a single-node volume need it shared.
	spec := webSpec("pg", 0)
	spec.Replicas = 2
	spec.Task.Container.Mounts = []api.Mount{{Type: api.MountVolume, Source: "db-data", Target: "/var/lib/postgresql/data"}}
	_, err = admin.CreateService(ctx, spec)
	wantErr(t, err, http.StatusBadRequest, `service "pg": task.container.mounts[0].source: volume db-data is single-node and not shared`)
	spec.Task.Container.Mounts[0].Source = "new-one" // created at first use: local, not shared
	_, err = admin.CreateService(ctx, spec)
	wantErr(t, err, http.StatusBadRequest, `volume new-one is single-node and not shared`)
	spec.Task.Container.Mounts[0].Source = "a/b"
	_, err = admin.CreateService(ctx, spec)
	wantErr(t, err, http.StatusBadRequest, `mounts[0].source: volume name "a/b": must not contain '/'`)
	spec.Task.Container.Mounts[0] = api.Mount{Type: api.MountVolume, Source: "db-data", Target: "data"}
	_, err = admin.CreateService(ctx, spec)
	wantErr(t, err, http.StatusBadRequest, `mounts[0].target: must be an absolute path, not "data"`)
	spec.Task.Container.Mounts[0].Target = "/data"
	spec.Replicas = 1
	if _, err := admin.CreateService(ctx, spec); err != nil {
		t.Fatal(err)
	}
	_, err = admin.ScaleService(ctx, "pg", 2)
	wantErr(t, err, http.StatusBadRequest, `volume db-data is single-node and not shared`)
	spec2 := webSpec("web", 0)
	spec2.Replicas = 3
	spec2.Task.Container.Mounts = []api.Mount{{Type: api.MountVolume, Source: "shared", Target: "/srv"}}
	if _, err := admin.CreateService(ctx, spec2); err != nil {
		t.Fatalf("multi-node volume with 3 replicas: %v", err)
	}

	// rm refuses a volume in use, naming the services; --force removes it.
	_, err = admin.RemoveVolume(ctx, "db-data", false)
	wantErr(t, err, http.StatusConflict, `volume "db-data" is in use by services pg; remove them first, or use --force`)
	if _, err := admin.Volume(ctx, "db-data"); err != nil {
		t.Fatalf("refused rm removed the volume: %v", err)
	}
	if _, err := admin.RemoveVolume(ctx, "db-data", true); err != nil {
		t.Fatal(err)
	}
	_, err = admin.Volume(ctx, "db-data")
	wantErr(t, err, http.StatusNotFound, `volume "db-data" not found`)
	_, err = admin.RemoveVolume(ctx, "db-data", false)
	wantErr(t, err, http.StatusNotFound, `volume "db-data" not found`)

	// Workers may not write volumes.
	worker := c.client(t, "worker", hostOf(srv))
	_, err = worker.CreateVolume(ctx, api.VolumeSpec{Name: "x"})
	if err == nil {
		t.Fatal("worker created a volume")
	}
}
