package stack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/warrenhq/warren/controlplane/api"
)

// Action is what a plan does to one service.
type Action string

const (
	Create    Action = "create"
	Update    Action = "update"
	Unchanged Action = "unchanged"
	Delete    Action = "delete"
)

// Change is one field that differs, as JSON values ("" when absent).
type Change struct {
	Field string `json:"field"`
	Old   string `json:"old,omitempty"`
	New   string `json:"new,omitempty"`
}

// Step is the plan for one service.
type Step struct {
	Action  Action `json:"action"`
	Service string `json:"service"` // name inside the stack
	Name    string `json:"name"`    // cluster-wide name
	// Spec is the spec to send (create, update).
	Spec    *api.ServiceSpec `json:"spec,omitempty"`
	Changes []Change         `json:"changes,omitempty"`
}

// Plan turns the cluster's services into a stack's.
type Plan struct {
	Stack string `json:"stack"`
	Steps []Step `json:"steps"`
	// Orphans are services of the stack the files no longer define; they
	// are deleted only with prune.
	Orphans []string `json:"orphans,omitempty"`
	// Objects are the stack's secrets, configs and volumes, created or
	// updated before any service; Deletes are those pruned, removed after
	// the services that used them were updated.
	Objects []ObjectStep `json:"objects,omitempty"`
	Deletes []ObjectStep `json:"deletes,omitempty"`
	// ObjectOrphans ("secret shop_old") are kept without prune.
	ObjectOrphans []string `json:"object_orphans,omitempty"`
}

// forceLabel is set by `service update --force`; a file does not know it,
// so it is neither a difference nor dropped.
const forceLabel = "warren.force-update"

// MakePlan compares a qualified stack (see Qualify) with the cluster's
// services. Only services labelled with the stack are its own: a service
// of the same name that is not is a conflict, never taken over.
func MakePlan(desired Stack, current []api.Service, prune bool) (Plan, error) {
	return MakePlanAll(desired, Current{Services: current}, prune)
}

// MakePlanAll is MakePlan over services, secrets, configs and volumes.
func MakePlanAll(desired Stack, cur Current, prune bool) (Plan, error) {
	current := cur.Services
	p := Plan{Stack: desired.Name}
	var err error
	if p.Objects, p.Deletes, p.ObjectOrphans, err = planObjects(desired, cur, prune); err != nil {
		return Plan{}, err
	}
	mine := map[string]api.Service{}
	others := map[string]bool{}
	for _, s := range current {
		if s.Spec.Labels[LabelStack] == desired.Name {
			mine[s.Spec.Name] = s
		} else {
			others[s.Spec.Name] = true
		}
	}
	wanted := map[string]bool{}
	for _, svc := range desired.Services {
		name := svc.Spec.Name
		wanted[name] = true
		spec := svc.Spec
		cur, exists := mine[name]
		switch {
		case others[name]:
			return Plan{}, fmt.Errorf("service %s exists and is not part of stack %s (label %s): remove or rename it", name, desired.Name, LabelStack)
		case !exists:
			p.Steps = append(p.Steps, Step{Action: Create, Service: svc.Name, Name: name, Spec: &spec})
		case normalize(cur.Spec).Mode != normalize(spec).Mode:
			return Plan{}, fmt.Errorf("service %s: mode cannot change from %s to %s in place: remove it (warren service rm %s) and apply again", name, cur.Spec.Mode, spec.Mode, name)
		default:
			if v, ok := cur.Spec.Labels[forceLabel]; ok {
				spec.Labels = copyLabels(spec.Labels)
				spec.Labels[forceLabel] = v
			}
			spec.Task.Container = keepPin(cur.Spec.Task.Container, spec.Task.Container)
			changes := Diff(cur.Spec, spec)
			if len(changes) == 0 {
				p.Steps = append(p.Steps, Step{Action: Unchanged, Service: svc.Name, Name: name})
			} else {
				p.Steps = append(p.Steps, Step{Action: Update, Service: svc.Name, Name: name, Spec: &spec, Changes: changes})
			}
		}
	}
	// Published ports are cluster-wide: one held by a service outside the
	// stack would fail that service's creation halfway through the stack.
	for _, svc := range desired.Services {
		for i, port := range normalize(svc.Spec).Ports {
			if port.PublishedPort == 0 {
				continue
			}
			for _, o := range current {
				if o.Spec.Labels[LabelStack] == desired.Name {
					continue
				}
				for _, q := range normalize(o.Spec).Ports {
					if q.PublishedPort == port.PublishedPort && q.Protocol == port.Protocol {
						return Plan{}, fmt.Errorf("services.%s.ports[%d]: port %d/%s is already published by service %s", svc.Name, i, port.PublishedPort, port.Protocol, o.Spec.Name)
					}
				}
			}
		}
	}
	var gone []string
	for name := range mine {
		if !wanted[name] {
			gone = append(gone, name)
		}
	}
	sort.Strings(gone)
	for _, name := range gone {
		if prune {
			p.Steps = append(p.Steps, Step{Action: Delete, Service: mine[name].Spec.Labels[LabelService], Name: name})
		} else {
			p.Orphans = append(p.Orphans, name)
		}
	}
	return p, nil
}

func copyLabels(m map[string]string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Changed reports whether applying the plan changes anything.
func (p Plan) Changed() bool {
	for _, s := range p.Steps {
		if s.Action != Unchanged {
			return true
		}
	}
	for _, s := range p.Objects {
		if s.Action != Unchanged {
			return true
		}
	}
	return len(p.Deletes) > 0
}

// String is the plan as --dry-run prints it, like kubectl diff.
func (p Plan) String() string {
	var b strings.Builder
	for _, s := range p.Objects {
		fmt.Fprintf(&b, "%-9s %s %s\n", s.Action, s.Kind, s.Name)
		if s.Why != "" {
			fmt.Fprintf(&b, "            %s\n", s.Why)
		}
	}
	for _, s := range p.Steps {
		fmt.Fprintf(&b, "%-9s %s\n", s.Action, s.Name)
		for _, c := range s.Changes {
			fmt.Fprintf(&b, "            %s: %s → %s\n", c.Field, orNone(c.Old), orNone(c.New))
		}
	}
	for _, s := range p.Deletes {
		fmt.Fprintf(&b, "%-9s %s %s\n", s.Action, s.Kind, s.Name)
	}
	for _, o := range append(append([]string(nil), p.Orphans...), p.ObjectOrphans...) {
		fmt.Fprintf(&b, "%-9s %s (no longer in the files; --prune deletes it)\n", "orphan", o)
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// Diff lists the fields that differ between two specs, after the defaults
// the API server fills in, so a spec read back from the cluster equals the
// one that created it.
func Diff(old, new api.ServiceSpec) []Change {
	a, b := flatten(normalize(old)), flatten(normalize(new))
	var fields []string
	for k := range a {
		fields = append(fields, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			fields = append(fields, k)
		}
	}
	sort.Strings(fields)
	var out []Change
	for _, f := range fields {
		if a[f] != b[f] {
			out = append(out, Change{Field: f, Old: a[f], New: b[f]})
		}
	}
	return out
}

// normalize applies the API server's defaults (see apiserver.withDefaults).
func normalize(s api.ServiceSpec) api.ServiceSpec {
	if s.Mode == "" {
		s.Mode = api.ModeReplicated
	}
	ports := make([]api.PortConfig, len(s.Ports))
	copy(ports, s.Ports)
	for i := range ports {
		if ports[i].Protocol == "" {
			ports[i].Protocol = api.TCP
		}
	}
	s.Ports = ports
	if s.Update.Strategy == "" {
		s.Update.Strategy = api.StrategyRolling
	}
	if s.Update.Parallelism == 0 {
		s.Update.Parallelism = 1
	}
	if s.Task.Restart.Condition == "" {
		s.Task.Restart.Condition = api.RestartAny
	}
	s.Task.Container.Secrets = normalizeRefs(s.Task.Container.Secrets, "/run/secrets/")
	s.Task.Container.Configs = normalizeRefs(s.Task.Container.Configs, "/")
	return s
}

// normalizeRefs fills what the API fills in a secret or config mount
// (apiserver.resolveSecretRefs) and drops what it derives from the store —
// the ID and the value's rotation — so a spec read back equals the file's.
func normalizeRefs(refs []api.SecretRef, dir string) []api.SecretRef {
	if len(refs) == 0 {
		return nil
	}
	out := make([]api.SecretRef, len(refs))
	for i, r := range refs {
		r.ID, r.Rotation = "", 0
		if r.Target == "" {
			r.Target = dir + r.Name
		}
		if r.Mode == 0 {
			r.Mode = 0o444
		}
		out[i] = r
	}
	return out
}

// flatten turns a spec into field path → JSON value, leaving out empty
// values so nil and empty lists, maps and zero values compare equal.
func flatten(s api.ServiceSpec) map[string]string {
	raw, _ := json.Marshal(s)
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // nano-CPUs and bytes stay exact
	_ = dec.Decode(&v)
	out := map[string]string{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if path == "" {
					walk(k, e)
				} else {
					walk(path+"."+k, e)
				}
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		case nil:
		case string:
			if x != "" && x != "0s" {
				out[path] = fmt.Sprintf("%q", x)
			}
		case json.Number:
			if x != "0" {
				out[path] = x.String()
			}
		case bool:
			if x {
				out[path] = "true"
			}
		default:
			out[path] = fmt.Sprint(x)
		}
	}
	walk("", v)
	return out
}
