package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/warrenhq/warren/controlplane/api"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)

// apply encodes b and applies it at the next index.
func apply(t testing.TB, s *Store, b *Batch) error {
	t.Helper()
	data, err := Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	return s.Apply(s.Index()+1, data)
}

func mustApply(t testing.TB, s *Store, b *Batch) {
	t.Helper()
	if err := apply(t, s, b); err != nil {
		t.Fatalf("apply: %v", err)
	}
}

func svc(id, name string) api.Service {
	return api.Service{ID: id, Spec: api.ServiceSpec{Name: name, Mode: api.ModeReplicated, Replicas: 1}}
}

func task(id, svcID, nodeID string, st api.TaskState) api.Task {
	return api.Task{ID: id, ServiceID: svcID, NodeID: nodeID, DesiredState: api.TaskRunning,
		Status: api.TaskStatus{State: st}}
}

func TestApplyStampsMetaFromBatchClock(t *testing.T) {
	s := New()
	mustApply(t, s, &Batch{Now: t0, PutServices: []api.Service{svc("s1", "web")}})
	t1 := t0.Add(time.Minute)
	mustApply(t, s, &Batch{Now: t1, PutServices: []api.Service{svc("s1", "web")}})
	got, ok := s.View().Service("s1")
	if !ok {
		t.Fatal("service missing")
	}
	want := api.Meta{Version: 2, CreatedAt: t0, UpdatedAt: t1}
	if !got.Meta.CreatedAt.Equal(want.CreatedAt) || !got.Meta.UpdatedAt.Equal(want.UpdatedAt) || got.Meta.Version != want.Version {
		t.Fatalf("meta = %+v, want %+v", got.Meta, want)
	}
}

func TestExpectations(t *testing.T) {
	s := New()
	mustApply(t, s, &Batch{Now: t0, Expect: []Expectation{{Kind: KindTask, ID: "t1"}}, PutTasks: []api.Task{task("t1", "s1", "", api.TaskPending)}})
	// Must-not-exist on an existing task.
	err := apply(t, s, &Batch{Now: t0, Expect: []Expectation{{Kind: KindTask, ID: "t1"}}, PutTasks: []api.Task{task("t1", "s1", "n1", api.TaskAssigned)}})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("must-not-exist on existing task: err = %v, want ErrConflict", err)
	}
	// Stale version.
	err = apply(t, s, &Batch{Now: t0, Expect: []Expectation{{Kind: KindTask, ID: "t1", Version: 7}}, PutTasks: []api.Task{task("t1", "s1", "n1", api.TaskAssigned)}})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("stale version: err = %v, want ErrConflict", err)
	}
	// Right version.
	mustApply(t, s, &Batch{Now: t0, Expect: []Expectation{{Kind: KindTask, ID: "t1", Version: 1}}, PutTasks: []api.Task{task("t1", "s1", "n1", api.TaskAssigned)}})
	if got := s.View().TasksByNode("n1"); len(got) != 1 || got[0].Meta.Version != 4 {
		t.Fatalf("TasksByNode(n1) = %+v, want t1 at version 4", got)
	}
	// Cluster singleton.
	mustApply(t, s, &Batch{Now: t0, Expect: []Expectation{{Kind: KindCluster}}, Cluster: &api.Cluster{ID: "c"}})
	if err := apply(t, s, &Batch{Now: t0, Expect: []Expectation{{Kind: KindCluster}}, Cluster: &api.Cluster{ID: "c2"}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("second init: err = %v, want ErrConflict", err)
	}
	if err := apply(t, s, &Batch{Now: t0, Expect: []Expectation{{Kind: "bogus"}}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown kind: err = %v, want ErrInvalid", err)
	}
}

func TestRejectedBatchChangesNothingButIndex(t *testing.T) {
	s := New()
	mustApply(t, s, &Batch{Now: t0, PutServices: []api.Service{svc("s1", "web")}})
	before := s.View()
	err := apply(t, s, &Batch{Now: t0,
		PutTasks:    []api.Task{task("t1", "s1", "n1", api.TaskAssigned)},
		PutServices: []api.Service{svc("s2", "web")}, // name clash: rejects everything
	})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), `"web"`) {
		t.Fatalf("err = %v, want ErrConflict naming web", err)
	}
	v := s.View()
	if v.Index() != 2 {
		t.Fatalf("index = %d, want 2 (rejected entries still advance it)", v.Index())
	}
	if _, ok := v.Task("t1"); ok {
		t.Fatal("task of a rejected batch was applied")
	}
	if len(before.Services()) != 1 || len(v.Services()) != 1 {
		t.Fatal("services changed by a rejected batch")
	}
}

func TestServiceNames(t *testing.T) {
	s := New()
	mustApply(t, s, &Batch{Now: t0, PutServices: []api.Service{svc("s1", "web")}})
	// Rename frees the old name.
	mustApply(t, s, &Batch{Now: t0, PutServices: []api.Service{svc("s1", "www")}})
	if _, ok := s.View().ServiceByName("web"); ok {
		t.Fatal("old name still resolves after rename")
	}
	mustApply(t, s, &Batch{Now: t0, PutServices: []api.Service{svc("s2", "web")}})
	// Two new services with one name in the same batch.
	if err := apply(t, s, &Batch{Now: t0, PutServices: []api.Service{svc("s3", "db"), svc("s4", "db")}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate in batch: err = %v, want ErrConflict", err)
	}
	// Replace a service by another of the same name in one batch.
	mustApply(t, s, &Batch{Now: t0, DeleteServices: []string{"s2"}, PutServices: []api.Service{svc("s5", "web")}})
	got, ok := s.View().ServiceByName("web")
	if !ok || got.ID != "s5" {
		t.Fatalf("ServiceByName(web) = %v %v, want s5", got.ID, ok)
	}
	if err := apply(t, s, &Batch{Now: t0, PutServices: []api.Service{{ID: "s6"}}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("nameless service: err = %v, want ErrInvalid", err)
	}
}

func TestTaskStatusRules(t *testing.T) {
	s := New()
	mustApply(t, s, &Batch{Now: t0, PutTasks: []api.Task{task("t1", "s1", "n1", api.TaskAssigned)}})
	upd := func(node string, st api.TaskStatus) {
		mustApply(t, s, &Batch{Now: t0, TaskStatuses: []TaskStatusUpdate{{TaskID: "t1", NodeID: node, Status: st}}})
	}
	status := func() api.TaskStatus { x, _ := s.View().Task("t1"); return x.Status }

	upd("n2", api.TaskStatus{State: api.TaskRunning})
	if status().State != api.TaskAssigned {
		t.Fatal("a node changed the status of a task assigned elsewhere")
	}
	upd("n1", api.TaskStatus{State: api.TaskRunning, Health: api.HealthStarting})
	upd("n1", api.TaskStatus{State: api.TaskRunning, Health: api.HealthHealthy, Addr: "10.42.1.5"})
	if got := status(); got.State != api.TaskRunning || got.Health != api.HealthHealthy || got.Addr != "10.42.1.5" {
		t.Fatalf("same-state update not applied: %+v", got)
	}
	upd("n1", api.TaskStatus{State: api.TaskStarting})
	if status().State != api.TaskRunning {
		t.Fatal("status moved backwards")
	}
	ver := func() uint64 { x, _ := s.View().Task("t1"); return x.Meta.Version }
	v := ver()
	upd("n1", status()) // identical report
	if ver() != v {
		t.Fatal("identical status bumped the version")
	}
	// The same instant in another zone is the same status.
	at := t0.Add(time.Minute)
	upd("n1", api.TaskStatus{State: api.TaskRunning, Health: api.HealthHealthy, Addr: "10.42.1.5", Timestamp: at})
	v = ver()
	upd("n1", api.TaskStatus{State: api.TaskRunning, Health: api.HealthHealthy, Addr: "10.42.1.5", Timestamp: at.In(time.FixedZone("X", 3600))})
	if ver() != v {
		t.Fatal("a zone-shifted identical timestamp bumped the version")
	}
	upd("n1", api.TaskStatus{State: api.TaskFailed, ExitCode: 1})
	if got := status(); got.State != api.TaskFailed || got.ExitCode != 1 {
		t.Fatalf("forward update not applied: %+v", got)
	}
	// Reports for unknown tasks are skipped, not errors.
	mustApply(t, s, &Batch{Now: t0, TaskStatuses: []TaskStatusUpdate{{TaskID: "nope", NodeID: "n1"}}})
}

func TestNodeStatusMergeKeepsSpecAndManagerFields(t *testing.T) {
	s := New()
	mustApply(t, s, &Batch{Now: t0, NodeStatuses: []NodeStatusUpdate{{NodeID: "n1", Status: api.NodeStatus{State: api.NodeReady, Hostname: "a"}}}})
	n, _ := s.View().Node("n1")
	if n.Spec.Role != api.RoleWorker || n.Spec.Availability != api.AvailabilityActive {
		t.Fatalf("registered node spec = %+v", n.Spec)
	}
	n.Spec.Availability = api.AvailabilityDrain
	n.Status.Network.Subnet = "10.42.7.0/24"
	mustApply(t, s, &Batch{Now: t0, PutNodes: []api.Node{n}})
	hb := t0.Add(time.Second)
	mustApply(t, s, &Batch{Now: hb, NodeStatuses: []NodeStatusUpdate{{NodeID: "n1", Status: api.NodeStatus{Hostname: "b", Heartbeat: hb, Network: api.NodeNetwork{WGPublicKey: "k"}}}}})
	n, _ = s.View().Node("n1")
	if n.Spec.Availability != api.AvailabilityDrain || n.Status.Network.Subnet != "10.42.7.0/24" ||
		n.Status.State != api.NodeReady || n.Status.Hostname != "b" || n.Status.Network.WGPublicKey != "k" {
		t.Fatalf("merged node = %+v", n)
	}
	if !n.Meta.CreatedAt.Equal(t0) || !n.Meta.UpdatedAt.Equal(hb) {
		t.Fatalf("meta = %+v", n.Meta)
	}
}

func TestViewIsImmutableAndIndexesFollowMoves(t *testing.T) {
	s := New()
	mustApply(t, s, &Batch{Now: t0, PutTasks: []api.Task{task("t1", "s1", "n1", api.TaskAssigned), task("t2", "s1", "n1", api.TaskAssigned)}})
	old := s.View()
	moved := task("t1", "s2", "n2", api.TaskAssigned)
	mustApply(t, s, &Batch{Now: t0, PutTasks: []api.Task{moved}, DeleteTasks: []string{"t2"}})
	if len(old.TasksByNode("n1")) != 2 || len(old.Tasks()) != 2 {
		t.Fatal("an old view changed after apply")
	}
	v := s.View()
	if len(v.TasksByNode("n1")) != 0 || len(v.TasksByService("s1")) != 0 {
		t.Fatalf("stale index entries: node n1 %v, service s1 %v", v.TasksByNode("n1"), v.TasksByService("s1"))
	}
	if got := v.TasksByNode("n2"); len(got) != 1 || got[0].ServiceID != "s2" {
		t.Fatalf("TasksByNode(n2) = %+v", got)
	}
	// A prefix of another node ID must not leak into its listing.
	mustApply(t, s, &Batch{Now: t0, PutTasks: []api.Task{task("t3", "s2", "n22", api.TaskAssigned)}})
	if got := s.View().TasksByNode("n2"); len(got) != 1 {
		t.Fatalf("TasksByNode(n2) = %d tasks, want 1", len(got))
	}
}

func TestTaskStates(t *testing.T) {
	s := New()
	mustApply(t, s, &Batch{Now: t0, PutTasks: []api.Task{task("t1", "s1", "n1", api.TaskRunning), task("t2", "s1", "n1", api.TaskRunning), task("t3", "s2", "n2", api.TaskPending)}})
	old := s.View()
	mustApply(t, s, &Batch{Now: t0, DeleteTasks: []string{"t2"}, PutTasks: []api.Task{task("t3", "s2", "n2", api.TaskFailed)}})
	for _, c := range []struct {
		v    *View
		want map[api.TaskState]int
	}{
		{old, map[api.TaskState]int{api.TaskRunning: 2, api.TaskPending: 1}},
		{s.View(), map[api.TaskState]int{api.TaskRunning: 1, api.TaskFailed: 1}},
	} {
		if got := c.v.TaskStates(); !maps.Equal(got, c.want) {
			t.Errorf("at index %d: TaskStates() = %v, want %v", c.v.Index(), got, c.want)
		}
	}
}

// A service's tasks-changed index moves on every write to one of its tasks
// — put, status, move to another service (both), delete — and on nothing
// else; a deleted service keeps none; a store read from a snapshot has the
// snapshot's index for every service with tasks.
func TestServiceTasksChanged(t *testing.T) {
	s := New()
	at := func(v *View, svcs ...string) []uint64 {
		var out []uint64
		for _, id := range svcs {
			out = append(out, v.ServiceTasksChanged(id))
		}
		return out
	}
	steps := []struct {
		b    *Batch
		want []uint64 // s1, s2, s3
	}{
		{&Batch{PutServices: []api.Service{svc("s1", "a"), svc("s2", "b"), svc("s3", "c")}}, []uint64{0, 0, 0}},
		{&Batch{PutTasks: []api.Task{task("t1", "s1", "n1", api.TaskRunning)}}, []uint64{2, 0, 0}},
		{&Batch{PutServices: []api.Service{svc("s1", "a")}}, []uint64{2, 0, 0}},                                                                     // the service itself: not its tasks
		{&Batch{TaskStatuses: []TaskStatusUpdate{{TaskID: "t1", NodeID: "n1", Status: api.TaskStatus{State: api.TaskRunning}}}}, []uint64{2, 0, 0}}, // nothing new: no write
		{&Batch{TaskStatuses: []TaskStatusUpdate{{TaskID: "t1", NodeID: "n1", Status: api.TaskStatus{State: api.TaskFailed}}}}, []uint64{5, 0, 0}},
		{&Batch{PutTasks: []api.Task{task("t1", "s2", "n1", api.TaskRunning)}}, []uint64{6, 6, 0}}, // moved: both
		{&Batch{PutTasks: []api.Task{task("t2", "s3", "n1", api.TaskRunning)}}, []uint64{6, 6, 7}},
		{&Batch{DeleteTasks: []string{"t1"}}, []uint64{6, 8, 7}},
		{&Batch{DeleteServices: []string{"s3"}}, []uint64{6, 8, 0}},
		{&Batch{DeleteTasks: []string{"t2"}}, []uint64{6, 8, 0}}, // its service is gone: no entry comes back
	}
	for i, st := range steps {
		st.b.Now = t0
		mustApply(t, s, st.b)
		if got := at(s.View(), "s1", "s2", "s3"); !slices.Equal(got, st.want) {
			t.Fatalf("step %d: tasks changed at %v, want %v", i+1, got, st.want)
		}
	}
	mustApply(t, s, &Batch{Now: t0, PutTasks: []api.Task{task("t3", "s1", "n1", api.TaskRunning)}})
	var snap bytes.Buffer
	if err := s.Snapshot(&snap); err != nil {
		t.Fatal(err)
	}
	r := New()
	if err := r.Restore(&snap); err != nil {
		t.Fatal(err)
	}
	idx := r.View().Index()
	if got := at(r.View(), "s1", "s2", "s3"); !slices.Equal(got, []uint64{idx, 0, 0}) {
		t.Fatalf("restored at %d: tasks changed at %v, want s1 at the snapshot's index and none else", idx, got)
	}
}

func TestWaitIndex(t *testing.T) {
	s := New()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan uint64, 1)
	go func() {
		idx, err := s.WaitIndex(ctx, 0)
		if err != nil {
			t.Error(err)
		}
		done <- idx
	}()
	mustApply(t, s, &Batch{Now: t0})
	if idx := <-done; idx != 1 {
		t.Fatalf("WaitIndex returned %d, want 1", idx)
	}
	short, cancel2 := context.WithCancel(ctx)
	cancel2()
	if _, err := s.WaitIndex(short, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitIndex on cancelled ctx: %v", err)
	}
}

func TestUnknownCommandTypes(t *testing.T) {
	s := New()
	if err := s.Apply(1, []byte{byte(IgnorableCommandFlag | 5), '{', '}'}); err != nil {
		t.Fatalf("ignorable type: %v", err)
	}
	if err := s.Apply(2, []byte{77}); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("essential unknown type: err = %v", err)
	}
	if s.Index() != 2 {
		t.Fatalf("index = %d, want 2", s.Index())
	}
	if err := s.Apply(2, []byte{byte(CmdBatch), '{', '}'}); err == nil {
		t.Fatal("re-applying an index succeeded")
	}
	f := NewFSM(s)
	defer func() {
		if recover() == nil {
			t.Fatal("FSM did not stop on an essential unknown command")
		}
	}()
	f.Apply(&raft.Log{Index: 3, Type: raft.LogCommand, Data: []byte{77}})
}

func TestFSMApplyReturnsRejection(t *testing.T) {
	s := New()
	f := NewFSM(s)
	data, _ := Encode(&Batch{Now: t0, Expect: []Expectation{{Kind: KindNode, ID: "x", Version: 3}}})
	resp := f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data})
	if err, ok := resp.(error); !ok || !errors.Is(err, ErrConflict) {
		t.Fatalf("response = %#v, want ErrConflict", resp)
	}
	data, _ = Encode(&Batch{Now: t0})
	if resp := f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: data}); resp != nil {
		t.Fatalf("response = %#v, want nil", resp)
	}
}

func populated(t testing.TB) *Store {
	s := New()
	mustApply(t, s, &Batch{Now: t0, Cluster: &api.Cluster{ID: "c1", Subnets: map[string]string{"n1": "10.42.1.0/24"}}})
	var b Batch
	b.Now = t0.Add(time.Second)
	for i := 0; i < 20; i++ {
		b.PutNodes = append(b.PutNodes, api.Node{ID: fmt.Sprintf("n%02d", i), Spec: api.NodeSpec{Role: api.RoleWorker, Labels: map[string]string{"site": "a"}}})
	}
	b.PutServices = []api.Service{svc("s1", "web"), svc("s2", "db")}
	for i := 0; i < 100; i++ {
		b.PutTasks = append(b.PutTasks, task(fmt.Sprintf("t%03d", i), fmt.Sprintf("s%d", 1+i%2), fmt.Sprintf("n%02d", i%20), api.TaskAssigned))
	}
	b.PutImages = []api.Image{{Name: "warren/demo:1", Digest: "sha256:ab", Holders: []string{"n00"}}}
	mustApply(t, s, &b)
	return s
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	s := populated(t)
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
		t.Fatal("snapshot of a restored store differs from the original")
	}
	if r.Index() != s.Index() {
		t.Fatalf("restored index %d, want %d", r.Index(), s.Index())
	}
	v := r.View()
	if got, ok := v.ServiceByName("db"); !ok || got.ID != "s2" {
		t.Fatal("name index not rebuilt")
	}
	if len(v.TasksByNode("n03")) != 5 || len(v.TasksByService("s1")) != 50 {
		t.Fatal("task indexes not rebuilt")
	}
	// Both continue identically.
	next := &Batch{Now: t0.Add(time.Hour), DeleteTasks: []string{"t000"}, PutServices: []api.Service{svc("s3", "cache")}}
	mustApply(t, s, next)
	next2 := &Batch{Now: t0.Add(time.Hour), DeleteTasks: []string{"t000"}, PutServices: []api.Service{svc("s3", "cache")}}
	mustApply(t, r, next2)
	a.Reset()
	b.Reset()
	_ = s.Snapshot(&a)
	_ = r.Snapshot(&b)
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("stores diverged after the same batch")
	}
}

func TestRestoreRejectsDamage(t *testing.T) {
	s := populated(t)
	var a bytes.Buffer
	_ = s.Snapshot(&a)
	lines := bytes.SplitAfter(a.Bytes(), []byte("\n"))
	truncated := bytes.Join(lines[:len(lines)/2], nil)
	r := populated(t)
	mustApply(t, r, &Batch{Now: t0})
	idx := r.Index()
	if err := r.Restore(bytes.NewReader(truncated)); err == nil {
		t.Fatal("restored a truncated snapshot")
	}
	if r.Index() != idx {
		t.Fatal("failed restore changed the store")
	}
	if err := r.Restore(strings.NewReader(`{"format":99,"index":1}` + "\n")); err == nil {
		t.Fatal("restored an unknown format")
	}
}

func TestFSMSnapshotPersistIsolatedFromLaterApplies(t *testing.T) {
	s := populated(t)
	f := NewFSM(s)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	_ = s.Snapshot(&want)
	mustApply(t, s, &Batch{Now: t0, DeleteTasks: []string{"t001"}})
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	if !sink.closed || !bytes.Equal(sink.Bytes(), want.Bytes()) {
		t.Fatal("persisted snapshot does not match the state at Snapshot time")
	}
}

type memSink struct {
	bytes.Buffer
	closed bool
}

func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Cancel() error { return nil }
func (m *memSink) Close() error  { m.closed = true; return nil }
