package store

import (
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
)

// A task its node's absence made unknown takes whatever its node reports
// once back, even an earlier state (it was restarted after a reboot); from
// there the usual forward-only rule holds again, and the task is marked
// rejoined (the reconcile policy decides its slot). Other nodes still
// cannot report on it.
func TestUnknownTaskTakesItsNodesReport(t *testing.T) {
	s := New()
	tk := task("t1", "s1", "n1", api.TaskUnknown)
	mustApply(t, s, &Batch{Now: t0, PutTasks: []api.Task{tk}})
	upd := func(node string, st api.TaskState) {
		mustApply(t, s, &Batch{Now: t0, TaskStatuses: []TaskStatusUpdate{{TaskID: "t1", NodeID: node, Status: api.TaskStatus{State: st}}}})
	}
	state := func() api.TaskState { x, _ := s.View().Task("t1"); return x.Status.State }
	rejoined := func() bool { x, _ := s.View().Task("t1"); return x.Rejoined }
	upd("n2", api.TaskRunning)
	if state() != api.TaskUnknown || rejoined() {
		t.Fatal("another node reported on the task")
	}
	upd("n1", api.TaskStarting)
	if state() != api.TaskStarting {
		t.Fatalf("state %s, want the node's starting after unknown", state())
	}
	if !rejoined() {
		t.Error("a task its returned node reported again is not marked rejoined")
	}
	upd("n1", api.TaskPreparing)
	if state() != api.TaskStarting {
		t.Fatal("status moved backwards once known again")
	}
	if !api.TaskRunning.Before(api.TaskUnknown) || api.TaskUnknown.Terminal() || !api.TaskUnknown.Before(api.TaskComplete) {
		t.Error("unknown must come after running and before every terminal state")
	}
}
