package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	iradix "github.com/hashicorp/go-immutable-radix"

	"github.com/warrenhq/warren/controlplane/api"
)

// state is one immutable version of everything. Trees are persistent
// (copy-on-write radix trees), so publishing a new state copies only the
// paths an apply touched and a View is a pointer to a state.
type state struct {
	index   uint64
	cluster *api.Cluster

	nodes     *iradix.Tree // node ID -> *api.Node
	services  *iradix.Tree // service ID -> *api.Service
	svcByName *iradix.Tree // service name -> *api.Service
	tasks     *iradix.Tree // task ID -> *api.Task
	bySvc     *iradix.Tree // service ID \x00 task ID -> *api.Task
	byNode    *iradix.Tree // node ID \x00 task ID -> *api.Task (assigned tasks only)
	images    *iradix.Tree // image name -> *api.Image
	volumes   *iradix.Tree // volume name -> *api.Volume
	secrets   *iradix.Tree // kind \x00 ID -> *api.Secret (secrets.go)
	secNames  *iradix.Tree // kind \x00 name -> *api.Secret
	removed   *iradix.Tree // node ID -> *RemovedNode (removed.go)
	// tasksAt is, for each service that exists, the raft index of the
	// last write to any of its tasks (put, status, move, delete): a
	// service's tasks are what they were at a view before exactly when
	// this did not move (View.ServiceTasksChanged).
	tasksAt *iradix.Tree // service ID -> uint64
}

func emptyState() *state {
	t := iradix.New()
	return &state{nodes: t, services: t, svcByName: t, tasks: t, bySvc: t, byNode: t, images: t, volumes: t, secrets: t, secNames: t, removed: t, tasksAt: t}
}

// Store is the in-memory state of the cluster. Objects inside it are never
// mutated after they are published: every change builds new objects and a
// new state, so a View never sees a half-applied batch.
//
// Apply and Restore are serialised by a writer lock; View, Index and
// WaitIndex never wait for a writer.
type Store struct {
	wmu sync.Mutex // serialises writers

	cur atomic.Pointer[state]

	nmu     sync.Mutex    // guards changed
	changed chan struct{} // closed and replaced on every publish
}

// New returns an empty store at index 0.
func New() *Store {
	s := &Store{changed: make(chan struct{})}
	s.cur.Store(emptyState())
	return s
}

// Index is the raft index of the last entry the store applied or restored.
func (s *Store) Index() uint64 { return s.cur.Load().index }

// View returns a consistent, immutable view of the current state. It costs
// one atomic load, so leader loops may take one on every change.
func (s *Store) View() *View { return &View{st: s.cur.Load()} }

// WaitIndex blocks until the store's index is greater than after, or ctx is
// done, and returns the index it saw. This is the basis of blocking queries:
// a watcher passes the last index it processed.
func (s *Store) WaitIndex(ctx context.Context, after uint64) (uint64, error) {
	for {
		s.nmu.Lock()
		st, ch := s.cur.Load(), s.changed
		s.nmu.Unlock()
		if st.index > after {
			return st.index, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return st.index, fmt.Errorf("wait for index > %d: %w", after, ctx.Err())
		}
	}
}

func (s *Store) publish(st *state) {
	s.nmu.Lock()
	s.cur.Store(st)
	close(s.changed)
	s.changed = make(chan struct{})
	s.nmu.Unlock()
}

// Apply applies one log entry at raft index index. It is deterministic: the
// outcome depends only on the current state, index and data.
//
// The index advances even when the entry is rejected (ErrConflict,
// ErrInvalid) or ignored (an unknown ignorable type), so that the store's
// index always names the last log entry it has seen and a proposer waiting
// for its own entry is woken either way. A rejected batch changes nothing
// else.
func (s *Store) Apply(index uint64, data []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	cur := s.cur.Load()
	if index <= cur.index {
		// Raft never hands an FSM the same index twice; this is a caller bug,
		// and applying it would make Meta.Version go backwards.
		return fmt.Errorf("apply index %d: store is already at %d", index, cur.index)
	}
	b, ignore, err := decode(data)
	if err != nil || ignore {
		s.publish(cur.withIndex(index))
		return err
	}
	next, err := applyBatch(cur, index, b)
	if err != nil {
		s.publish(cur.withIndex(index))
		return err
	}
	s.publish(next)
	return nil
}

func (st *state) withIndex(index uint64) *state {
	n := *st
	n.index = index
	return &n
}

// txn is a batch being applied on top of a state.
type txn struct {
	index uint64
	now   time.Time

	cluster   *api.Cluster
	nodes     *iradix.Txn
	services  *iradix.Txn
	svcByName *iradix.Txn
	tasks     *iradix.Txn
	bySvc     *iradix.Txn
	byNode    *iradix.Txn
	images    *iradix.Txn
	volumes   *iradix.Txn
	secrets   *iradix.Txn
	secNames  *iradix.Txn
	removed   *iradix.Txn
	tasksAt   *iradix.Txn // nil while a snapshot is read (readSnapshot)
}

func applyBatch(cur *state, index uint64, b *Batch) (*state, error) {
	if err := checkExpect(cur, b.Expect); err != nil {
		return nil, err
	}
	t := &txn{
		index: index,
		// UTC so that the encoded timestamps do not depend on the
		// proposer's zone offset representation.
		now:       b.Now.UTC(),
		cluster:   cur.cluster,
		nodes:     cur.nodes.Txn(),
		services:  cur.services.Txn(),
		svcByName: cur.svcByName.Txn(),
		tasks:     cur.tasks.Txn(),
		bySvc:     cur.bySvc.Txn(),
		byNode:    cur.byNode.Txn(),
		images:    cur.images.Txn(),
		volumes:   cur.volumes.Txn(),
		secrets:   cur.secrets.Txn(),
		secNames:  cur.secNames.Txn(),
		removed:   cur.removed.Txn(),
		tasksAt:   cur.tasksAt.Txn(),
	}
	for _, step := range []func(*Batch) error{
		t.applyCluster, t.applyNodes, t.applyRemovedNodes, t.applyServices, t.applyTasks,
		t.applyTaskStatuses, t.applyNodeStatuses, t.applyImages, t.applyVolumes, t.applySecrets,
	} {
		if err := step(b); err != nil {
			return nil, err
		}
	}
	return &state{
		index:     index,
		cluster:   t.cluster,
		nodes:     t.nodes.CommitOnly(),
		services:  t.services.CommitOnly(),
		svcByName: t.svcByName.CommitOnly(),
		tasks:     t.tasks.CommitOnly(),
		bySvc:     t.bySvc.CommitOnly(),
		byNode:    t.byNode.CommitOnly(),
		images:    t.images.CommitOnly(),
		volumes:   t.volumes.CommitOnly(),
		secrets:   t.secrets.CommitOnly(),
		secNames:  t.secNames.CommitOnly(),
		removed:   t.removed.CommitOnly(),
		tasksAt:   t.tasksAt.CommitOnly(),
	}, nil
}

func checkExpect(cur *state, exp []Expectation) error {
	for _, e := range exp {
		var have uint64
		switch e.Kind {
		case KindCluster:
			if cur.cluster != nil {
				have = cur.cluster.Meta.Version
			}
		case KindNode:
			if v, ok := cur.nodes.Get([]byte(e.ID)); ok {
				have = v.(*api.Node).Meta.Version
			}
		case KindService:
			if v, ok := cur.services.Get([]byte(e.ID)); ok {
				have = v.(*api.Service).Meta.Version
			}
		case KindTask:
			if v, ok := cur.tasks.Get([]byte(e.ID)); ok {
				have = v.(*api.Task).Meta.Version
			}
		case KindSecret, KindConfig, string(api.KindRegistryAuth):
			if v, ok := cur.secrets.Get(pairKey(e.Kind, e.ID)); ok {
				have = v.(*api.Secret).Meta.Version
			}
		case KindVolume:
			if v, ok := cur.volumes.Get([]byte(e.ID)); ok {
				have = v.(*api.Volume).Meta.Version
			}
		default:
			return fmt.Errorf("expectation on %q: %w: unknown kind", e.Kind, ErrInvalid)
		}
		if have != e.Version {
			if e.Version == 0 {
				return fmt.Errorf("%s %q already exists at version %d: %w", e.Kind, e.ID, have, ErrConflict)
			}
			return fmt.Errorf("%s %q is at version %d, expected %d: %w", e.Kind, e.ID, have, e.Version, ErrConflict)
		}
	}
	return nil
}

func (t *txn) stamp(old *api.Meta) api.Meta {
	m := api.Meta{Version: t.index, CreatedAt: t.now, UpdatedAt: t.now}
	if old != nil {
		m.CreatedAt = old.CreatedAt
	}
	return m
}

func (t *txn) applyCluster(b *Batch) error {
	if b.Cluster == nil {
		return nil
	}
	c := b.Cluster // decoded for this apply only; nobody else holds it
	var old *api.Meta
	if t.cluster != nil {
		old = &t.cluster.Meta
	}
	c.Meta = t.stamp(old)
	t.cluster = c
	return nil
}

func (t *txn) applyNodes(b *Batch) error {
	for _, id := range b.DeleteNodes {
		t.nodes.Delete([]byte(id))
	}
	for i := range b.PutNodes {
		n := &b.PutNodes[i]
		if n.ID == "" {
			return fmt.Errorf("put node %d: %w: empty id", i, ErrInvalid)
		}
		var old *api.Meta
		if v, ok := t.nodes.Get([]byte(n.ID)); ok {
			old = &v.(*api.Node).Meta
		}
		n.Meta = t.stamp(old)
		t.nodes.Insert([]byte(n.ID), n)
	}
	return nil
}

func (t *txn) applyServices(b *Batch) error {
	for _, id := range b.DeleteServices {
		v, ok := t.services.Delete([]byte(id))
		if !ok {
			continue
		}
		t.dropName(v.(*api.Service))
		t.tasksAt.Delete([]byte(id))
	}
	for i := range b.PutServices {
		s := &b.PutServices[i]
		if s.ID == "" || s.Spec.Name == "" {
			return fmt.Errorf("put service %d: %w: empty id or name", i, ErrInvalid)
		}
		if v, ok := t.svcByName.Get([]byte(s.Spec.Name)); ok && v.(*api.Service).ID != s.ID {
			return fmt.Errorf("service name %q is taken by service %s: %w", s.Spec.Name, v.(*api.Service).ID, ErrConflict)
		}
		var old *api.Meta
		if v, ok := t.services.Get([]byte(s.ID)); ok {
			prev := v.(*api.Service)
			old = &prev.Meta
			if prev.Spec.Name != s.Spec.Name {
				t.dropName(prev)
			}
		}
		s.Meta = t.stamp(old)
		t.services.Insert([]byte(s.ID), s)
		t.svcByName.Insert([]byte(s.Spec.Name), s)
	}
	return nil
}

// dropName removes a service's name entry if it still points at it.
func (t *txn) dropName(s *api.Service) {
	if v, ok := t.svcByName.Get([]byte(s.Spec.Name)); ok && v.(*api.Service).ID == s.ID {
		t.svcByName.Delete([]byte(s.Spec.Name))
	}
}

func pairKey(a, b string) []byte {
	k := make([]byte, 0, len(a)+1+len(b))
	k = append(k, a...)
	k = append(k, 0)
	return append(k, b...)
}

// tasksChanged records a write to one of service's tasks at this index;
// a service that does not exist (deleted before its tasks) keeps no entry.
func (t *txn) tasksChanged(service string) {
	if t.tasksAt == nil {
		return
	}
	if _, ok := t.services.Get([]byte(service)); !ok {
		t.tasksAt.Delete([]byte(service))
		return
	}
	t.tasksAt.Insert([]byte(service), t.index)
}

func (t *txn) unindexTask(old *api.Task) {
	t.tasksChanged(old.ServiceID)
	t.bySvc.Delete(pairKey(old.ServiceID, old.ID))
	if old.NodeID != "" {
		t.byNode.Delete(pairKey(old.NodeID, old.ID))
	}
}

// putTask inserts task into the primary tree and both secondary indexes.
// Index values are the task itself so that listing by service or node needs
// no second lookup; every change therefore rewrites all three.
func (t *txn) putTask(task, old *api.Task) {
	if old != nil && (old.ServiceID != task.ServiceID || old.NodeID != task.NodeID) {
		t.unindexTask(old)
	}
	t.tasks.Insert([]byte(task.ID), task)
	t.bySvc.Insert(pairKey(task.ServiceID, task.ID), task)
	t.tasksChanged(task.ServiceID)
	if task.NodeID != "" {
		t.byNode.Insert(pairKey(task.NodeID, task.ID), task)
	}
}

func (t *txn) applyTasks(b *Batch) error {
	for _, id := range b.DeleteTasks {
		if v, ok := t.tasks.Delete([]byte(id)); ok {
			t.unindexTask(v.(*api.Task))
		}
	}
	for i := range b.PutTasks {
		task := &b.PutTasks[i]
		if task.ID == "" {
			return fmt.Errorf("put task %d: %w: empty id", i, ErrInvalid)
		}
		var old *api.Task
		var oldMeta *api.Meta
		if v, ok := t.tasks.Get([]byte(task.ID)); ok {
			old = v.(*api.Task)
			oldMeta = &old.Meta
		}
		task.Meta = t.stamp(oldMeta)
		t.putTask(task, old)
	}
	return nil
}

func (t *txn) applyTaskStatuses(b *Batch) error {
	for _, u := range b.TaskStatuses {
		v, ok := t.tasks.Get([]byte(u.TaskID))
		if !ok {
			continue // deleted meanwhile; the agent will stop it
		}
		old := v.(*api.Task)
		if u.NodeID == "" || old.NodeID != u.NodeID {
			continue // a node may only report on tasks assigned to it
		}
		// A task is unknown while its node was down; the node, back, says
		// what became of it, whatever state that is.
		back := old.Status.State == api.TaskUnknown && u.Status.State != api.TaskUnknown
		if !back && u.Status.State.Before(old.Status.State) || sameTaskStatus(u.Status, old.Status) {
			continue // stale, or nothing new: keep Version so watchers sleep
		}
		nt := *old
		nt.Status = u.Status
		if back {
			nt.Rejoined = true
		}
		nt.Meta = t.stamp(&old.Meta)
		t.putTask(&nt, old)
	}
	return nil
}

func (t *txn) applyNodeStatuses(b *Batch) error {
	for i, u := range b.NodeStatuses {
		if u.NodeID == "" {
			return fmt.Errorf("node status %d: %w: empty node id", i, ErrInvalid)
		}
		if t.wasRemoved(u.NodeID) {
			continue
		}
		var n api.Node
		var oldMeta *api.Meta
		if v, ok := t.nodes.Get([]byte(u.NodeID)); ok {
			old := v.(*api.Node)
			n = *old
			oldMeta = &old.Meta
			st := u.Status
			// Fields the managers own survive a heartbeat that omits them.
			if st.State == "" {
				st.State = old.Status.State
			}
			if st.Manager == nil {
				st.Manager = old.Status.Manager
			}
			if st.Network.Subnet == "" {
				st.Network.Subnet = old.Status.Network.Subnet
			}
			n.Status = st
		} else {
			role := api.RoleWorker
			if u.Status.Manager != nil {
				role = api.RoleManager
			}
			n = api.Node{
				ID:     u.NodeID,
				Spec:   api.NodeSpec{Role: role, Availability: api.AvailabilityActive},
				Status: u.Status,
			}
		}
		n.Meta = t.stamp(oldMeta)
		t.nodes.Insert([]byte(n.ID), &n)
	}
	return nil
}

func (t *txn) applyImages(b *Batch) error {
	for _, name := range b.DeleteImages {
		t.images.Delete([]byte(name))
	}
	for i := range b.PutImages {
		img := &b.PutImages[i]
		if img.Name == "" {
			return fmt.Errorf("put image %d: %w: empty name", i, ErrInvalid)
		}
		img.CreatedAt = t.now
		if v, ok := t.images.Get([]byte(img.Name)); ok {
			img.CreatedAt = v.(*api.Image).CreatedAt
		}
		t.images.Insert([]byte(img.Name), img)
	}
	return nil
}

// sameTaskStatus compares statuses with time.Time.Equal: == would also
// compare the decoded time.Location, which depends on the manager's local
// zone, and replicas in different zones would then disagree on whether an
// update is a no-op.
func sameTaskStatus(a, b api.TaskStatus) bool {
	if !a.Timestamp.Equal(b.Timestamp) {
		return false
	}
	a.Timestamp, b.Timestamp = time.Time{}, time.Time{}
	return a == b
}
