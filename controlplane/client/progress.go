package client

import (
	"fmt"
	"strings"

	"github.com/warrenhq/warren/controlplane/api"
)

// Progress summarises a service's convergence as the CLI sees it through
// this client: `service create`, `update` and `scale` poll the service and
// its tasks and stop when Done. It is pure so that the rule for "done" is
// tested without a cluster.
type Progress struct {
	Name             string
	Running, Want    int
	Done             bool
	Pending, Failing []string // "task: why", in task order
	AwaitingPromote  bool
}

// ProgressOf decides whether s has converged: every wanted task of the
// current spec runs (and passes its health check when it has one).
func ProgressOf(s api.Service, tasks []api.Task) Progress {
	p := Progress{Name: s.Spec.Name}
	running, want := ReplicaCounts(s, tasks)
	p.Want = want
	current := 0
	for _, t := range tasks {
		if t.ServiceID != s.ID || t.DesiredState != api.TaskRunning {
			continue
		}
		ok := t.Status.State == api.TaskRunning && t.SpecVersion == s.SpecVersion &&
			(t.Spec.Health == nil || t.Status.Health == api.HealthHealthy)
		if ok {
			current++
		}
		switch {
		case t.Status.State == api.TaskPending && t.Status.Message != "":
			p.Pending = append(p.Pending, fmt.Sprintf("%s: %s", TaskName(t), t.Status.Message))
		case t.Status.State.Terminal() || t.Status.Err != "":
			p.Failing = append(p.Failing, fmt.Sprintf("%s: %s %s", TaskName(t), t.Status.State, t.Status.Err))
		case t.Status.Health == api.HealthUnhealthy:
			p.Failing = append(p.Failing, fmt.Sprintf("%s: unhealthy", TaskName(t)))
		}
	}
	p.Running = running
	if s.Update != nil && s.Update.State == api.UpdateAwaitingPromote {
		// The new version is deployed beside the old one: done once every
		// task of the new spec runs (and passes its check).
		p.AwaitingPromote = true
		newTasks := 0
		for _, t := range tasks {
			if t.ServiceID == s.ID && t.DesiredState == api.TaskRunning && t.SpecVersion == s.SpecVersion {
				newTasks++
			}
		}
		p.Done = newTasks > 0 && current == newTasks
		return p
	}
	p.Done = current >= want && running == want && (s.Update == nil || s.Update.State != api.UpdateUpdating)
	return p
}

func (p Progress) String() string {
	switch {
	case p.Done && p.AwaitingPromote:
		return fmt.Sprintf("%s: %d/%d running, new version deployed: run `warren service promote %s` to finish", p.Name, p.Running, p.Want, p.Name)
	case p.Done:
		return fmt.Sprintf("%s: %d/%d running, converged", p.Name, p.Running, p.Want)
	}
	s := fmt.Sprintf("%s: %d/%d running…", p.Name, p.Running, p.Want)
	if len(p.Pending) > 0 {
		s += " pending: " + p.Pending[0]
	} else if len(p.Failing) > 0 {
		s += " failing: " + p.Failing[0]
	}
	return s
}

// Problem is why a service that did not converge in time is stuck.
func (p Progress) Problem() string {
	if len(p.Pending) > 0 {
		return strings.Join(p.Pending, "; ")
	}
	if len(p.Failing) > 0 {
		return strings.Join(p.Failing, "; ")
	}
	return fmt.Sprintf("%d/%d running", p.Running, p.Want)
}

// ReplicaCounts is what `service ls` shows as N/M: running tasks of the
// service against the tasks it should have.
func ReplicaCounts(s api.Service, tasks []api.Task) (running, want int) {
	for _, t := range tasks {
		if t.ServiceID != s.ID || t.DesiredState != api.TaskRunning {
			continue
		}
		if s.Spec.Mode == api.ModeGlobal {
			want++
		}
		if t.Status.State == api.TaskRunning {
			running++
		}
	}
	if s.Spec.Mode != api.ModeGlobal {
		want = int(s.Spec.Replicas)
	}
	return running, want
}

// TaskName is how the CLI names a task: SERVICE.SLOT for a replica,
// SERVICE.NODE (the node ID's first 12 characters) for a global task.
func TaskName(t api.Task) string {
	if t.Slot > 0 {
		return fmt.Sprintf("%s.%d", t.ServiceName, t.Slot)
	}
	node := t.NodeID
	if len(node) > 12 {
		node = node[:12]
	}
	return fmt.Sprintf("%s.%s", t.ServiceName, node)
}
