package api

import "testing"

// TestTaskStateOrder pins the lifecycle order Before and Terminal read: the
// states in the order a task moves through them, terminal from complete on.
func TestTaskStateOrder(t *testing.T) {
	lifecycle := []TaskState{TaskNew, TaskPending, TaskAssigned, TaskPreparing, TaskStarting, TaskRunning, TaskUnknown,
		TaskComplete, TaskShutdown, TaskFailed, TaskRejected, TaskOrphaned, TaskRemove}
	for i, s := range lifecycle {
		for j, o := range lifecycle {
			if got := s.Before(o); got != (i < j) {
				t.Errorf("%s.Before(%s) = %v, want %v", s, o, got, i < j)
			}
		}
		if got, want := s.Terminal(), i >= 7; got != want {
			t.Errorf("%s.Terminal() = %v, want %v", s, got, want)
		}
	}
	// A state this version does not know sorts with new, as a map lookup
	// of a missing key did.
	if TaskState("bogus").Before(TaskNew) || TaskNew.Before("bogus") || TaskState("bogus").Terminal() {
		t.Error("an unknown state does not sort with new")
	}
}
