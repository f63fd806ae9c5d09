package store

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/warrenhq/warren/controlplane/api"
)

// fuzzBase is a small cluster the fuzzed entry is applied on top of, so an
// entry can hit the update paths (expectations, status merges, deletes) and
// not only the inserts into an empty store.
func fuzzBase(t testing.TB) *Store {
	s := New()
	mustApply(t, s, &Batch{Now: t0,
		Cluster:     &api.Cluster{ID: "c1", CreatedAt: t0},
		PutNodes:    []api.Node{{ID: "n1", Spec: api.NodeSpec{Role: api.RoleManager}}, {ID: "n2", Spec: api.NodeSpec{Role: api.RoleWorker}}},
		PutServices: []api.Service{svc("s1", "web"), svc("s2", "db")},
		PutTasks:    []api.Task{task("t1", "s1", "n1", api.TaskRunning), task("t2", "s2", "n2", api.TaskPending)},
		PutImages:   []api.Image{{Name: "warren/demo:v1"}},
	})
	return s
}

func fuzzSnapshot(t testing.TB, s *Store) []byte {
	var b bytes.Buffer
	if err := s.Snapshot(&b); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return b.Bytes()
}

func fuzzSeedEntries(f *testing.F) {
	seeds := []*Batch{
		{Now: t0, PutServices: []api.Service{svc("s3", "api")}},
		{Now: t0, Expect: []Expectation{{Kind: KindService, ID: "s1", Version: 1}}, DeleteServices: []string{"s1"}, DeleteTasks: []string{"t1"}},
		{Now: t0, Expect: []Expectation{{Kind: KindService, ID: "s1", Version: 7}}},
		{Now: t0, PutServices: []api.Service{svc("s9", "web")}},
		{Now: t0, TaskStatuses: []TaskStatusUpdate{{TaskID: "t2", NodeID: "n2", Status: api.TaskStatus{State: api.TaskRunning}}}},
		{Now: t0, NodeStatuses: []NodeStatusUpdate{{NodeID: "n3", Status: api.NodeStatus{State: api.NodeReady, Hostname: "h"}}}},
		{Now: t0, PutTasks: []api.Task{task("t3", "nope", "n1", api.TaskRunning)}, DeleteNodes: []string{"n2"}},
		{Now: t0, DeleteImages: []string{"warren/demo:v1"}, PutImages: []api.Image{{Name: "x:1"}}},
	}
	for _, b := range seeds {
		data, err := Encode(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte{})
	f.Add([]byte{byte(CmdBatch)})
	f.Add([]byte{byte(CmdBatch), 'n', 'u', 'l', 'l'})
	f.Add([]byte{byte(IgnorableCommandFlag | 3), '{'})
	f.Add([]byte{2, '{', '}'})
}

// FuzzApply: a committed entry of any bytes is applied or rejected with an
// error; a rejected entry leaves the objects exactly as they were; an
// applied one leaves a state whose snapshot restores to the same bytes. The
// only panic allowed is the documented one, on an essential command type this
// binary does not know.
func FuzzApply(f *testing.F) {
	fuzzSeedEntries(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		s := fuzzBase(t)
		before := fuzzSnapshot(t, s)
		err := s.Apply(s.Index()+1, data)
		after := fuzzSnapshot(t, s)
		if err != nil {
			// Only the index moves: compare everything after the header line.
			if !bytes.Equal(body(before), body(after)) {
				t.Fatalf("rejected entry (%v) changed the state", err)
			}
		}
		r := New()
		if rerr := r.Restore(bytes.NewReader(after)); rerr != nil {
			t.Fatalf("state after apply does not restore: %v", rerr)
		}
		if again := fuzzSnapshot(t, r); !bytes.Equal(again, after) {
			t.Fatalf("snapshot round trip differs:\n%s\n---\n%s", after, again)
		}

		fsm := NewFSM(fuzzBase(t))
		func() {
			defer func() {
				if p := recover(); p != nil && !errors.Is(err, ErrUnknownCommand) {
					t.Fatalf("fsm panicked on an entry the store rejects with %v: %v", err, p)
				}
			}()
			fsm.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: data})
			if errors.Is(err, ErrUnknownCommand) {
				t.Fatalf("fsm applied an unknown essential command type %d", data[0])
			}
		}()
	})
}

func body(snap []byte) []byte {
	_, rest, _ := bytes.Cut(snap, []byte("\n"))
	return rest
}

// FuzzRestore: a snapshot (which a follower receives from the leader) of any
// bytes restores or fails; on failure the store is unchanged, on success it
// snapshots back to a stable form.
func FuzzRestore(f *testing.F) {
	f.Add(fuzzSnapshot(f, fuzzBase(f)))
	f.Add(fuzzSnapshot(f, New()))
	full := string(fuzzSnapshot(f, fuzzBase(f)))
	f.Add([]byte(full[:len(full)/2]))
	f.Add([]byte(strings.Replace(full, `"count":`, `"count":1`, 1)))
	f.Add([]byte(`{"format":1,"index":3}` + "\n" + `{"task":{"id":"t","service_id":"s"}}` + "\n" + `{"end":{"count":1}}` + "\n"))
	f.Add([]byte(`{"format":2,"index":3}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := fuzzBase(t)
		before := fuzzSnapshot(t, s)
		if err := s.Restore(bytes.NewReader(data)); err != nil {
			if after := fuzzSnapshot(t, s); !bytes.Equal(before, after) {
				t.Fatalf("failed restore (%v) changed the store", err)
			}
			return
		}
		once := fuzzSnapshot(t, s)
		r := New()
		if err := r.Restore(bytes.NewReader(once)); err != nil {
			t.Fatalf("a restored state's own snapshot does not restore: %v", err)
		}
		if twice := fuzzSnapshot(t, r); !bytes.Equal(once, twice) {
			t.Fatalf("snapshot not stable after restore:\n%s\n---\n%s", once, twice)
		}
	})
}
