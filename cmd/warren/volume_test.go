package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
)

func TestParseMountVolumes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want api.Mount
		err  string
	}{
		{in: "db-data:/var/lib/postgresql/data", want: api.Mount{Type: api.MountVolume, Source: "db-data", Target: "/var/lib/postgresql/data"}},
		{in: "db-data:/data:ro", want: api.Mount{Type: api.MountVolume, Source: "db-data", Target: "/data", ReadOnly: true}},
		{in: "/srv/x:/data", want: api.Mount{Type: api.MountBind, Source: "/srv/x", Target: "/data"}},
		{in: "type=volume,source=db,target=/data", want: api.Mount{Type: api.MountVolume, Source: "db", Target: "/data"}},
		{in: "type=volume,src=db,dst=/data,readonly,volume-nocopy", want: api.Mount{Type: api.MountVolume, Source: "db", Target: "/data", ReadOnly: true, NoCopy: true}},
		{in: "type=volume,source=db,target=/data,volume-nocopy=false", want: api.Mount{Type: api.MountVolume, Source: "db", Target: "/data"}},
		{in: "db:data", err: "target must be an absolute path"},
		{in: "type=volume,source=db,target=data", err: "target must be an absolute path"},
		{in: "type=volume,source=a/b,target=/data", err: `volume name "a/b": must not contain '/'`},
		{in: "type=volume,target=/data", err: `volume name "": must be 1-255 characters`},
		{in: "./rel:/data", err: "a bind source must be an absolute path"},
		{in: "db:/data:rx", err: "mode must be ro or rw"},
		{in: "type=bind,source=/a,target=/b,volume-nocopy", err: "volume-nocopy applies to volume mounts only"},
		{in: "type=volume,source=db,target=/d,size=1G", err: `unknown option "size"`},
	} {
		got, err := parseMount(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestVolumeCreateFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    volumeFlags
		want api.VolumeSpec
		err  string
	}{
		{name: "db", f: volumeFlags{driver: "local"}, want: api.VolumeSpec{Name: "db", Driver: "local"}},
		{name: "db", f: volumeFlags{driver: "local", node: "n1", labels: []string{"app=pg"}, shared: true},
			want: api.VolumeSpec{Name: "db", Driver: "local", Node: "n1", Labels: map[string]string{"app": "pg"}, Shared: true}},
		{name: "r", f: volumeFlags{driver: "sshfs", opts: []string{"host=10.0.0.1", "path=/export/r"}, scope: "multi-node"},
			want: api.VolumeSpec{Name: "r", Driver: "sshfs", Scope: api.ScopeMultiNode, Opts: map[string]string{"host": "10.0.0.1", "path": "/export/r"}}},
		{name: "db", f: volumeFlags{constraints: []string{"node.labels.disk==ssd"}}, want: api.VolumeSpec{Name: "db", Constraints: []string{"node.labels.disk==ssd"}}},
		{name: "a/b", err: "must not contain '/'"},
		{name: "db", f: volumeFlags{node: "n1", constraints: []string{"node.role==worker"}}, err: "--node and --constraint"},
		{name: "db", f: volumeFlags{opts: []string{"novalue"}}, err: `--opt "novalue": must be KEY=VALUE`},
		{name: "db", f: volumeFlags{labels: []string{"=x"}}, err: "--label"},
	} {
		got, err := tc.f.spec(tc.name)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s %+v: err = %v, want %q", tc.name, tc.f, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s %+v = %+v, %v; want %+v", tc.name, tc.f, got, err, tc.want)
		}
	}
}
