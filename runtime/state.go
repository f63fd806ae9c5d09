package runtime

import (
	"fmt"

	"github.com/warrenhq/warren/controlplane/api"
)

// Transition checks a state change a Worker is about to report. Within one
// attempt a task only moves forward (preparing → starting → running →
// complete|failed|shutdown). The one way back is a restart: from complete or
// failed to preparing, which the caller marks with restart=true and counts
// in TaskStatus.Restarts. Shutdown, rejected, orphaned and remove never move
// again.
func Transition(from, to api.TaskState, restart bool) error {
	if from == to {
		return nil
	}
	if restart {
		if (from == api.TaskComplete || from == api.TaskFailed) && (to == api.TaskPreparing || to == api.TaskStarting) {
			return nil
		}
		return fmt.Errorf("task state %s → %s: restart only from complete or failed to preparing or starting", from, to)
	}
	if !from.Before(to) {
		return fmt.Errorf("task state %s → %s: states only move forward", from, to)
	}
	if from.Terminal() {
		return fmt.Errorf("task state %s → %s: %s is terminal", from, to, from)
	}
	return nil
}
