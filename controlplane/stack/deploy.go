package stack

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// Cluster is what Deploy needs of the API (controlplane/client satisfies it
// through a small adapter in the CLI).
type Cluster interface {
	CreateService(ctx context.Context, spec api.ServiceSpec) error
	UpdateService(ctx context.Context, name string, spec api.ServiceSpec) error
	ScaleService(ctx context.Context, name string, replicas uint64) error
	RemoveService(ctx context.Context, name string) error
	// Service returns the service and its tasks.
	Service(ctx context.Context, name string) (*api.Service, []api.Task, error)
	ObjectCluster
}

// ObjectCluster creates and removes a stack's secrets, configs and volumes.
type ObjectCluster interface {
	CreateSecret(ctx context.Context, kind api.SecretKind, spec api.SecretSpec, data []byte) error
	// UpdateSecret replaces the value and the labels.
	UpdateSecret(ctx context.Context, kind api.SecretKind, name string, labels map[string]string, data []byte) error
	RemoveSecret(ctx context.Context, kind api.SecretKind, name string) error
	CreateVolume(ctx context.Context, spec api.VolumeSpec) error
	RemoveVolume(ctx context.Context, name string) error
}

// DeployOptions: time is an argument so the loop is tested without waiting.
type DeployOptions struct {
	// Detach returns once every service is created or updated; depends_on
	// conditions are still waited for, since they decide creation.
	Detach  bool
	Timeout time.Duration
	Poll    time.Duration
	Now     func() time.Time
	Sleep   func(context.Context, time.Duration) error
	// Progress receives one line per change of a service's state.
	Progress func(string)
}

// NotConverged is returned when the stack did not converge in time: the
// service and why.
type NotConverged struct {
	Service string
	Reason  string
	Timeout time.Duration
}

func (e *NotConverged) Error() string {
	return fmt.Sprintf("service %s did not converge within %s: %s", e.Service, e.Timeout, e.Reason)
}

// Deploy carries out a plan: deletions first (they may free published
// ports), then creations and updates in depends_on order — a service is
// created or updated only once each of its dependencies meets its
// condition — then, unless detached, waits until every service converged.
// An unchanged service is not sent at all, so re-applying a file leaves
// every spec version where it was.
func Deploy(ctx context.Context, c Cluster, st Stack, p Plan, o DeployOptions) error {
	if o.Progress == nil {
		o.Progress = func(string) {}
	}
	deadline := o.Now().Add(o.Timeout)
	// Secrets, configs and volumes first: the API refuses a service that
	// mounts a secret it does not know.
	for _, s := range p.Objects {
		if err := applyObject(ctx, c, s); err != nil {
			return err
		}
		if s.Action != Unchanged {
			o.Progress(fmt.Sprintf("%s %s: %sd", s.Kind, s.Name, s.Action))
		}
	}
	steps := map[string]Step{}
	for _, s := range p.Steps {
		steps[s.Name] = s
		if s.Action == Delete {
			if err := c.RemoveService(ctx, s.Name); err != nil {
				return fmt.Errorf("remove %s: %w", s.Name, err)
			}
			o.Progress(fmt.Sprintf("%s: removed", s.Name))
		}
	}
	w := &waiter{c: c, o: o, deadline: deadline, last: map[string]string{}}
	for _, wave := range Order(st) {
		for _, name := range wave {
			svc, _ := st.Service(name)
			for _, d := range svc.DependsOn {
				dep, ok := st.Service(d.Service)
				if !ok {
					continue // optional and absent
				}
				if err := w.until(ctx, dep.Spec.Name, d.Condition, fmt.Sprintf("%s waits for %s (%s)", svc.Spec.Name, dep.Spec.Name, d.Condition)); err != nil {
					return err
				}
			}
			step := steps[svc.Spec.Name]
			switch step.Action {
			case Create:
				if err := c.CreateService(ctx, *step.Spec); err != nil {
					return fmt.Errorf("create %s: %w", step.Name, err)
				}
				o.Progress(fmt.Sprintf("%s: created", step.Name))
			case Update:
				var err error
				if onlyReplicas(step.Changes) {
					// No new spec version: no task is replaced.
					err = c.ScaleService(ctx, step.Name, step.Spec.Replicas)
				} else {
					err = c.UpdateService(ctx, step.Name, *step.Spec)
				}
				if err != nil {
					return fmt.Errorf("update %s: %w", step.Name, err)
				}
				o.Progress(fmt.Sprintf("%s: updated (%s)", step.Name, changedFields(step.Changes)))
			}
		}
	}
	// Pruned objects last: by now no service of the stack mounts them.
	if err := RemoveObjects(ctx, c, p.Deletes, o.Progress); err != nil {
		return err
	}
	if o.Detach {
		return nil
	}
	for _, svc := range st.Services {
		if err := w.until(ctx, svc.Spec.Name, converged, ""); err != nil {
			return err
		}
	}
	return nil
}

func apiKind(k ObjectKind) api.SecretKind {
	if k == ObjConfig {
		return api.KindConfig
	}
	return api.KindSecret
}

func applyObject(ctx context.Context, c ObjectCluster, s ObjectStep) error {
	var err error
	switch {
	case s.Action == Create && s.Kind == ObjVolume:
		err = c.CreateVolume(ctx, *s.Volume)
	case s.Action == Create:
		err = c.CreateSecret(ctx, apiKind(s.Kind), s.Object.Spec, s.Object.Data)
	case s.Action == Update && s.Kind != ObjVolume:
		err = c.UpdateSecret(ctx, apiKind(s.Kind), s.Name, s.Object.Spec.Labels, s.Object.Data)
	}
	if err != nil {
		return fmt.Errorf("%s %s %s: %w", s.Action, s.Kind, s.Name, err)
	}
	return nil
}

// RemoveObjects deletes secrets, configs and volumes (a pruned plan's, or a
// removed stack's — see StackObjects). A volume's record goes; its data
// stays where the driver keeps it, as with `warren volume rm`.
func RemoveObjects(ctx context.Context, c ObjectCluster, steps []ObjectStep, progress func(string)) error {
	for _, s := range steps {
		var err error
		if s.Kind == ObjVolume {
			err = c.RemoveVolume(ctx, s.Name)
		} else {
			err = c.RemoveSecret(ctx, apiKind(s.Kind), s.Name)
		}
		if err != nil {
			return fmt.Errorf("remove %s %s: %w", s.Kind, s.Name, err)
		}
		if progress != nil {
			progress(fmt.Sprintf("%s %s: removed", s.Kind, s.Name))
		}
	}
	return nil
}

func onlyReplicas(cs []Change) bool {
	for _, c := range cs {
		if c.Field != "replicas" {
			return false
		}
	}
	return len(cs) > 0
}

func changedFields(cs []Change) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Field)
	}
	return strings.Join(out, ", ")
}

type waiter struct {
	c        Cluster
	o        DeployOptions
	deadline time.Time
	last     map[string]string
}

// until polls a service until it meets cond, reporting each new state.
func (w *waiter) until(ctx context.Context, name string, cond Condition, why string) error {
	for {
		svc, tasks, err := w.c.Service(ctx, name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		st := Status(*svc, tasks, cond)
		line := fmt.Sprintf("%s: %s", name, st.Summary)
		if why != "" && !st.Met {
			line += " — " + why
		}
		if w.last[name] != line {
			w.last[name] = line
			w.o.Progress(line)
		}
		if st.Met {
			return nil
		}
		if st.Failed != "" {
			return &NotConverged{Service: name, Reason: st.Failed, Timeout: w.o.Timeout}
		}
		if !w.o.Now().Before(w.deadline) {
			reason := st.Problem
			if reason == "" {
				reason = st.Summary
			}
			return &NotConverged{Service: name, Reason: reason, Timeout: w.o.Timeout}
		}
		if err := w.o.Sleep(ctx, w.o.Poll); err != nil {
			return err
		}
	}
}

// converged is the final wait: running (and healthy, with a check), or
// finished successfully for a service that is not restarted when it ends.
const converged Condition = "converged"

// ServiceStatus is how far a service is towards a condition.
type ServiceStatus struct {
	Met     bool
	Summary string // "2/3 running, 1 healthy"
	Problem string // why it is not there yet, from the tasks
	Failed  string // it can never get there (a completed-successfully dependency failed)
}

// Status decides a depends_on condition from a service and its tasks: only
// tasks of the current spec version count, so an update is met once the
// new tasks are.
func Status(svc api.Service, tasks []api.Task, cond Condition) ServiceStatus {
	want := int(svc.Spec.Replicas)
	global := svc.Spec.Mode == api.ModeGlobal
	var running, healthy, complete, desired int
	var problems []string
	var failed string
	for _, t := range tasks {
		if t.ServiceID != svc.ID || t.SpecVersion != svc.SpecVersion {
			continue
		}
		if t.DesiredState == api.TaskRunning {
			desired++
		}
		switch t.Status.State {
		case api.TaskRunning:
			running++
			if t.Status.Health == api.HealthHealthy {
				healthy++
			} else if t.Status.Health == api.HealthUnhealthy {
				problems = append(problems, fmt.Sprintf("task %d unhealthy", t.Slot))
			}
		case api.TaskComplete:
			if t.Status.ExitCode == 0 {
				complete++
			} else {
				failed = fmt.Sprintf("task exited with status %d", t.Status.ExitCode)
			}
		case api.TaskFailed, api.TaskRejected:
			msg := t.Status.Err
			if msg == "" {
				msg = fmt.Sprintf("exit status %d", t.Status.ExitCode)
			}
			problems = append(problems, fmt.Sprintf("task %s: %s", t.Status.State, msg))
			if cond == Completed && t.Spec.Restart.Condition == api.RestartNone {
				failed = fmt.Sprintf("task %s: %s", t.Status.State, msg)
			}
		case api.TaskPending:
			if t.Status.Message != "" {
				problems = append(problems, "pending: "+t.Status.Message)
			}
		}
	}
	if global {
		want = desired
	}
	s := ServiceStatus{Summary: fmt.Sprintf("%d/%d running", running, want)}
	if svc.Spec.Task.Health != nil {
		s.Summary += fmt.Sprintf(", %d healthy", healthy)
	}
	s.Problem = strings.Join(dedupeStrings(problems), "; ")
	switch cond {
	case Started:
		s.Met = running >= want && (!global || want > 0)
	case Healthy:
		s.Met = healthy >= want && (!global || want > 0)
	case Completed:
		s.Summary = fmt.Sprintf("%d/%d completed", complete, max(want, 1))
		s.Met = complete >= max(want, 1)
		s.Failed = failed
	case converged:
		up := running
		if svc.Spec.Task.Health != nil {
			up = healthy
		}
		s.Met = up >= want && (!global || want > 0)
		if svc.Spec.Task.Restart.Condition != api.RestartAny && complete > 0 {
			s.Met = up+complete >= want
			s.Summary += fmt.Sprintf(", %d completed", complete)
		}
	}
	if u := svc.Update; u != nil {
		switch u.State {
		case api.UpdateUpdating:
			s.Met = false
			s.Summary += ", updating"
		case api.UpdateAwaitingPromote:
			// Canary and blue/green stop beside the old version until an
			// operator promotes: the new tasks being up is as far as it goes.
			up := running
			if svc.Spec.Task.Health != nil {
				up = healthy
			}
			s.Met = up > 0
			s.Summary += fmt.Sprintf(", new version deployed: run `warren service promote %s` to finish", svc.Spec.Name)
		case api.UpdatePaused, api.UpdateRolledBack:
			s.Failed = fmt.Sprintf("update %s: %s", u.State, u.Message)
		}
	}
	return s
}

func dedupeStrings(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// ErrNotConverged lets callers pick an exit status.
var ErrNotConverged = errors.New("stack did not converge")

// Is makes errors.Is(err, ErrNotConverged) true for a *NotConverged.
func (e *NotConverged) Is(target error) bool { return target == ErrNotConverged }
