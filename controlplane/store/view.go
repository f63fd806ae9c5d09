package store

import (
	iradix "github.com/hashicorp/go-immutable-radix"

	"github.com/warrenhq/warren/controlplane/api"
)

// View is an immutable snapshot of the state at one index. It is safe for
// concurrent use and never changes, however long it is held.
//
// Values returned by a View share their maps and slices (labels, env,
// ports) with the store: treat them as read-only and copy before changing
// them. Lists are sorted by ID (images by name).
type View struct{ st *state }

// Index is the raft index this view reflects.
func (v *View) Index() uint64 { return v.st.index }

// Cluster returns the cluster singleton, or nil before init. The caller must
// not modify it.
func (v *View) Cluster() *api.Cluster { return v.st.cluster }

// Node returns one node.
func (v *View) Node(id string) (api.Node, bool) {
	if x, ok := v.st.nodes.Get([]byte(id)); ok {
		return *x.(*api.Node), true
	}
	return api.Node{}, false
}

// Nodes returns every node, sorted by ID.
func (v *View) Nodes() []api.Node { return list[api.Node](v.st.nodes, nil) }

// Service returns one service.
func (v *View) Service(id string) (api.Service, bool) {
	if x, ok := v.st.services.Get([]byte(id)); ok {
		return *x.(*api.Service), true
	}
	return api.Service{}, false
}

// ServiceByName returns the service with the given name; names are unique.
func (v *View) ServiceByName(name string) (api.Service, bool) {
	if x, ok := v.st.svcByName.Get([]byte(name)); ok {
		return *x.(*api.Service), true
	}
	return api.Service{}, false
}

// Services returns every service, sorted by ID.
func (v *View) Services() []api.Service { return list[api.Service](v.st.services, nil) }

// Task returns one task.
func (v *View) Task(id string) (api.Task, bool) {
	if x, ok := v.st.tasks.Get([]byte(id)); ok {
		return *x.(*api.Task), true
	}
	return api.Task{}, false
}

// Tasks returns every task, sorted by ID.
func (v *View) Tasks() []api.Task { return list[api.Task](v.st.tasks, nil) }

// TasksByService returns the tasks of one service, sorted by task ID.
func (v *View) TasksByService(serviceID string) []api.Task {
	return list[api.Task](v.st.bySvc, pairKey(serviceID, ""))
}

// ServiceTasksChanged is the raft index of the last write to any of one
// service's tasks (0: none since the service exists; read from a snapshot,
// the snapshot's index for every service with tasks). Equal at two views
// of one store, the service's tasks are the same at both.
func (v *View) ServiceTasksChanged(serviceID string) uint64 {
	if x, ok := v.st.tasksAt.Get([]byte(serviceID)); ok {
		return x.(uint64)
	}
	return 0
}

// TasksByNode returns the tasks assigned to one node, sorted by task ID.
func (v *View) TasksByNode(nodeID string) []api.Task {
	return list[api.Task](v.st.byNode, pairKey(nodeID, ""))
}

// Image returns one loaded image.
func (v *View) Image(name string) (api.Image, bool) {
	if x, ok := v.st.images.Get([]byte(name)); ok {
		return *x.(*api.Image), true
	}
	return api.Image{}, false
}

// Images returns every image, sorted by name.
func (v *View) Images() []api.Image { return list[api.Image](v.st.images, nil) }

// Counts returns the number of nodes, services and tasks without copying
// them, for metrics.
func (v *View) Counts() (nodes, services, tasks int) {
	return v.st.nodes.Len(), v.st.services.Len(), v.st.tasks.Len()
}

// TaskStates counts the tasks in each status state without copying them,
// for metrics: a scrape reads every task.
func (v *View) TaskStates() map[api.TaskState]int {
	out := map[api.TaskState]int{}
	v.st.tasks.Root().Walk(func(_ []byte, x interface{}) bool {
		out[x.(*api.Task).Status.State]++
		return false
	})
	return out
}

// list copies the values under prefix (all of them for nil) in key order.
func list[T any](t *iradix.Tree, prefix []byte) []T {
	// Sized before copying: a task is 864 bytes, and growing the
	// slice by appending copied each one about twice more (the largest
	// allocation on the leader, which lists a node's and a service's tasks
	// for every table).
	n := t.Len()
	if prefix != nil {
		n = 0
		t.Root().WalkPrefix(prefix, func([]byte, interface{}) bool { n++; return false })
	}
	out := make([]T, 0, n)
	t.Root().WalkPrefix(prefix, func(_ []byte, x interface{}) bool {
		out = append(out, *x.(*T))
		return false
	})
	return out
}
