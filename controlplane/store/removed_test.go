package store

import (
	"bytes"
	"errors"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
)

// A removed node is gone and tombstoned in one entry; a heartbeat it sent
// before the removal, applied after it, does not bring it back; the
// tombstone survives a snapshot and restore; other nodes are untouched.
func TestRemoveNodesTombstones(t *testing.T) {
	s := New()
	n1 := api.Node{ID: "n1", Spec: api.NodeSpec{Role: api.RoleWorker}}
	n2 := api.Node{ID: "n2", Spec: api.NodeSpec{Role: api.RoleWorker}}
	mustApply(t, s, &Batch{Now: t0, PutNodes: []api.Node{n1, n2}})
	if s.View().NodeRemoved("n1") {
		t.Fatal("a node is removed before anyone removed it")
	}
	mustApply(t, s, &Batch{Now: t0, RemoveNodes: []string{"n1"}})
	v := s.View()
	if _, ok := v.Node("n1"); ok {
		t.Error("removed node still listed")
	}
	if !v.NodeRemoved("n1") || v.NodeRemoved("n2") || v.NodeRemoved("n3") {
		t.Errorf("removed: n1 %v n2 %v n3 %v, want true false false", v.NodeRemoved("n1"), v.NodeRemoved("n2"), v.NodeRemoved("n3"))
	}
	if got := v.RemovedNodes(); len(got) != 1 || got[0].ID != "n1" || !got[0].RemovedAt.Equal(t0) {
		t.Errorf("tombstones = %+v, want n1 at %s", got, t0)
	}

	mustApply(t, s, &Batch{Now: t0, NodeStatuses: []NodeStatusUpdate{
		{NodeID: "n1", Status: api.NodeStatus{State: api.NodeReady}},
		{NodeID: "n2", Status: api.NodeStatus{State: api.NodeReady}},
	}})
	if _, ok := s.View().Node("n1"); ok {
		t.Error("a late heartbeat brought the removed node back")
	}
	if n, _ := s.View().Node("n2"); n.Status.State != api.NodeReady {
		t.Errorf("n2 state %q, want the heartbeat's ready", n.Status.State)
	}

	var snap bytes.Buffer
	if err := s.Snapshot(&snap); err != nil {
		t.Fatal(err)
	}
	r := New()
	if err := r.Restore(bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatal(err)
	}
	if !r.View().NodeRemoved("n1") || len(r.View().RemovedNodes()) != 1 {
		t.Errorf("after restore: removed n1 %v, tombstones %+v", r.View().NodeRemoved("n1"), r.View().RemovedNodes())
	}

	if err := apply(t, s, &Batch{Now: t0, RemoveNodes: []string{""}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("remove of an empty id: %v, want invalid", err)
	}
}

// The tombstone has its own command type: a manager that does not know it
// must stop, not delete the node and keep accepting its certificate.
func TestRemoveNodeBatchCommandType(t *testing.T) {
	for _, tc := range []struct {
		b    *Batch
		want CommandType
	}{
		{&Batch{RemoveNodes: []string{"n1"}}, CmdRemoveNodeBatch},
		{&Batch{RemoveNodes: []string{"n1"}, PutVolumes: []api.Volume{vol("db", "")}}, CmdRemoveNodeBatch},
		{&Batch{DeleteNodes: []string{"n1"}}, CmdBatch},
	} {
		data, err := Encode(tc.b)
		if err != nil {
			t.Fatal(err)
		}
		if CommandType(data[0]) != tc.want {
			t.Errorf("%+v encoded as type %d, want %d", tc.b, data[0], tc.want)
		}
	}
	if CmdRemoveNodeBatch&IgnorableCommandFlag != 0 {
		t.Error("CmdRemoveNodeBatch must be essential")
	}
}
