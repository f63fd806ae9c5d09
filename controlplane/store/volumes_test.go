package store

import (
	"bytes"
	"errors"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
)

func vol(name, node string) api.Volume {
	return api.Volume{Name: name, Spec: api.VolumeSpec{Name: name, Driver: api.LocalDriver, Scope: api.ScopeSingleNode},
		Status: api.VolumeStatus{Node: node}}
}

func TestVolumesPutExpectDelete(t *testing.T) {
	s := New()
	mustApply(t, s, &Batch{Now: t0, Expect: []Expectation{{Kind: KindVolume, ID: "db", Version: 0}}, PutVolumes: []api.Volume{vol("db", "")}})
	v, ok := s.View().Volume("db")
	if !ok || v.Meta.Version != 1 {
		t.Fatalf("volume = %+v, %v", v, ok)
	}
	// A second create of the same name conflicts.
	err := apply(t, s, &Batch{Now: t0, Expect: []Expectation{{Kind: KindVolume, ID: "db", Version: 0}}, PutVolumes: []api.Volume{vol("db", "")}})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate create: err = %v, want conflict", err)
	}
	// Binding an unbound volume to a node is allowed once; moving it is not.
	mustApply(t, s, &Batch{Now: t0, PutVolumes: []api.Volume{vol("db", "n1")}})
	if err := apply(t, s, &Batch{Now: t0, PutVolumes: []api.Volume{vol("db", "n2")}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("move to n2: err = %v, want conflict", err)
	}
	if v, _ := s.View().Volume("db"); v.Status.Node != "n1" {
		t.Fatalf("node = %q after refused move, want n1", v.Status.Node)
	}
	multi := vol("db", "n2")
	mustApply(t, s, &Batch{Now: t0, DeleteVolumes: []string{"db"}, PutVolumes: []api.Volume{multi}})
	mustApply(t, s, &Batch{Now: t0, DeleteVolumes: []string{"db"}})
	if _, ok := s.View().Volume("db"); ok {
		t.Fatal("volume still there after delete")
	}
	if err := apply(t, s, &Batch{Now: t0, PutVolumes: []api.Volume{vol("a/b", "")}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("name with '/': err = %v, want invalid", err)
	}
}

func TestVolumesSnapshotRoundTripAndUsers(t *testing.T) {
	s := populated(t)
	web := svc("s9", "postgres")
	web.Spec.Task.Container.Mounts = []api.Mount{{Type: api.MountVolume, Source: "pg", Target: "/data"}}
	mustApply(t, s, &Batch{Now: t0, PutServices: []api.Service{web}, PutVolumes: []api.Volume{vol("pg", "n1"), vol("other", "")}})
	var a bytes.Buffer
	if err := s.Snapshot(&a); err != nil {
		t.Fatal(err)
	}
	r := New()
	if err := r.Restore(bytes.NewReader(a.Bytes())); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := r.Snapshot(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("snapshot of restored store differs")
	}
	if got := r.View().Volumes(); len(got) != 2 || got[0].Name != "other" || got[1].Status.Node != "n1" {
		t.Fatalf("restored volumes = %+v", got)
	}
	if u := r.View().VolumeUsers("pg"); len(u) != 1 || u[0].ID != "s9" {
		t.Fatalf("users of pg = %+v", u)
	}
	if u := r.View().VolumeUsers("other"); len(u) != 0 {
		t.Fatalf("users of other = %+v", u)
	}
}

// A batch that touches volumes is tagged CmdVolumeBatch, so a manager that
// does not know volumes stops on it instead of dropping them; every other
// batch keeps CmdBatch, which such a manager still applies.
func TestVolumeBatchCommandType(t *testing.T) {
	for _, tc := range []struct {
		b    *Batch
		want CommandType
	}{
		{&Batch{PutServices: []api.Service{svc("s1", "web")}}, CmdBatch},
		{&Batch{PutVolumes: []api.Volume{vol("db", "")}}, CmdVolumeBatch},
		{&Batch{DeleteVolumes: []string{"db"}}, CmdVolumeBatch},
	} {
		data, err := Encode(tc.b)
		if err != nil {
			t.Fatal(err)
		}
		if CommandType(data[0]) != tc.want {
			t.Errorf("%+v: type %d, want %d", tc.b, data[0], tc.want)
		}
		s := New()
		if err := s.Apply(1, data); err != nil {
			t.Errorf("apply type %d: %v", data[0], err)
		}
	}
	if CmdVolumeBatch&IgnorableCommandFlag != 0 {
		t.Fatal("volume batches must be essential: skipping one would drop volumes")
	}
}
