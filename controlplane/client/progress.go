package client

import (
	"fmt"
	"strings"

	"github.com/warrenhq/warren/controlplane/api"
)

// Progress summarises a service's convergence as the CLI sees it through
// this client: `service create`, `update`, `scale`, `promote` and
// `rollback` poll the service and its tasks and stop when Done or Stopped.
// It is pure so that the rule for "done" is tested without a cluster.
//
// The rule is the managers': the orchestrator records in Service.Status
// whether the service converged, for the operator's write it has seen
// (ObservedGeneration). The CLI never recomputes that from task spec
// versions, which a rollback or a canary step moves without replacing tasks.
type Progress struct {
	Name string
	// Ready is the number of slots with a task that can take traffic, Want
	// the number of slots.
	Ready, Want      int
	Done             bool
	Pending, Failing []string // "task: why", in task order
	AwaitingPromote  bool
	// Stopped is why the rollout stopped without converging (it paused);
	// waiting longer will not help.
	Stopped string
	// Update is the rollout's state and message once observed.
	Update  api.UpdateState
	Message string
	// Versions describes both versions while a rollout runs them side by
	// side, e.g. "v2: 1/1 canary 10%".
	Versions string
	// Pulls are the image pulls the service's tasks wait for, per node.
	Pulls []NodePull
	// observed: the status answers the write waited for.
	observed bool
}

// ProgressOf reads s's status as of the operator's write that produced
// generation (0: whatever the service's own generation is).
func ProgressOf(s api.Service, tasks []api.Task, generation uint64) Progress {
	p := Progress{Name: s.Spec.Name}
	p.Ready, p.Want = ReplicaCounts(s, tasks)
	p.Versions = VersionsString(s)
	p.Pulls = PullsOf(s, tasks)
	for _, t := range tasks {
		if t.ServiceID != s.ID || t.DesiredState != api.TaskRunning {
			continue
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
	st := s.Status
	p.observed = st != nil && st.ObservedGeneration >= max(generation, s.Generation)
	if !p.observed {
		return p
	}
	if s.Update != nil {
		p.Update, p.Message = s.Update.State, s.Update.Message
	}
	p.AwaitingPromote = p.Update == api.UpdateAwaitingPromote
	if p.Update == api.UpdatePaused {
		p.Stopped = p.Message
	}
	p.Done = st.Converged
	return p
}

func (p Progress) String() string {
	counts := fmt.Sprintf("%s: %d/%d ready", p.Name, p.Ready, p.Want)
	if p.Versions != "" {
		counts += " (" + p.Versions + ")"
	}
	switch {
	case p.Done && p.AwaitingPromote:
		return fmt.Sprintf("%s, new version deployed: run `warren service promote %s` to finish", counts, p.Name)
	case p.Done:
		return counts + ", converged"
	case p.Stopped != "":
		return counts + ", " + p.Stopped
	case !p.observed:
		return counts + "… waiting for the orchestrator"
	}
	s := counts + "…"
	if len(p.Pending) > 0 {
		s += " pending: " + p.Pending[0]
	} else if len(p.Failing) > 0 {
		s += " failing: " + p.Failing[0]
	}
	return s
}

// Problem is why a service that did not converge in time is stuck.
func (p Progress) Problem() string {
	if p.Stopped != "" {
		return p.Stopped
	}
	if len(p.Pending) > 0 {
		return strings.Join(p.Pending, "; ")
	}
	if len(p.Failing) > 0 {
		return strings.Join(p.Failing, "; ")
	}
	if len(p.Pulls) > 0 {
		// A slow link, not a fault: say how far, so the operator can judge
		// a longer --timeout.
		var parts []string
		for _, pl := range p.Pulls {
			parts = append(parts, fmt.Sprintf("node %s still pulling %s %s", nodeName(pl.NodeID, nil), pl.Ref, FormatBytesOf(pl.Done, pl.Total)))
		}
		return strings.Join(parts, "; ")
	}
	if !p.observed {
		return "the orchestrator has not acted on the change yet"
	}
	return fmt.Sprintf("%d/%d ready", p.Ready, p.Want)
}

// ReplicaCounts is what `service ls` shows as N/M: slots with a task that
// can take traffic (running, and healthy when it has a check) against the
// slots the service should have. The orchestrator's count is used when it
// has one; before that, the tasks are counted the same way.
func ReplicaCounts(s api.Service, tasks []api.Task) (ready, want int) {
	if s.Status != nil {
		return s.Status.Ready, s.Status.Desired
	}
	slots := map[string]bool{}
	nodes := map[string]bool{}
	for _, t := range tasks {
		if t.ServiceID != s.ID || t.DesiredState != api.TaskRunning {
			continue
		}
		key := TaskName(t)
		if s.Spec.Mode == api.ModeGlobal {
			nodes[t.NodeID] = true
		}
		ok := t.Status.State == api.TaskRunning && (t.Spec.Health == nil || t.Status.Health == api.HealthHealthy)
		if ok && !slots[key] {
			slots[key] = true
			ready++
		}
	}
	want = int(s.Spec.Replicas)
	if s.Spec.Mode == api.ModeGlobal {
		want = len(nodes)
	}
	return ready, want
}

// VersionsString describes the versions of a rollout that runs more than
// one, current first: "v2: 1/1 canary 10%", "green: 3/3 100%, blue: 3/0 kept".
// It is empty when one version runs.
func VersionsString(s api.Service) string {
	if s.Status == nil || len(s.Status.Versions) < 2 {
		return ""
	}
	var state api.UpdateState
	if s.Update != nil {
		state = s.Update.State
	}
	var parts []string
	for i, v := range s.Status.Versions {
		if i > 0 && v.Ready == 0 && v.Desired == 0 {
			continue
		}
		part := fmt.Sprintf("%s: %d/%d", v.Version, v.Ready, v.Desired)
		if v.Current && state == api.UpdateAwaitingPromote && s.Spec.Update.Strategy == api.StrategyCanary {
			part += " canary"
		}
		if v.Weight != nil {
			part += fmt.Sprintf(" %d%%", *v.Weight)
		}
		if !v.Current && state == api.UpdateCompleted && s.Update != nil && !s.Update.KeepUntil.IsZero() {
			part += " kept"
		}
		parts = append(parts, part)
	}
	if state == api.UpdateAwaitingPromote && s.Spec.Update.Strategy == api.StrategyCanary {
		// The total already counts the old version; the canary is news.
		return parts[0]
	}
	return strings.Join(parts, ", ")
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
