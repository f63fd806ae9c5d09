package stack

import (
	"fmt"
	"sort"
	"strings"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/scheduler"
)

// Check refuses a stack that cannot be deployed as a whole, before anything
// changes: two services with one name, a port published twice, a
// dependency on a service that is not there, a cycle in depends_on. Every
// problem is reported, each with the field that holds it.
func Check(s Stack) error {
	var errs Errors
	fail := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	names := map[string]bool{}
	type portKey struct {
		proto api.Protocol
		port  uint16
	}
	published := map[portKey]string{}
	for _, svc := range s.Services {
		at := "services." + svc.Name
		if names[svc.Name] {
			fail(at, "defined twice")
		}
		names[svc.Name] = true
		for i, p := range svc.Spec.Ports {
			if p.PublishedPort == 0 {
				continue
			}
			proto := p.Protocol
			if proto == "" {
				proto = api.TCP
			}
			k := portKey{proto, p.PublishedPort}
			field := fmt.Sprintf("%s.ports[%d]", at, i)
			if prev, dup := published[k]; dup {
				fail(field, "port %d/%s is already published by %s", p.PublishedPort, proto, prev)
				continue
			}
			published[k] = field
		}
	}
	for _, svc := range s.Services {
		// What the API server would refuse, refused here before the first
		// service of the stack is created.
		for i, c := range svc.Spec.Task.Placement.Constraints {
			if _, err := scheduler.ParseConstraint(c); err != nil {
				fail(fmt.Sprintf("services.%s.task.placement.constraints[%d]", svc.Name, i), "%v", err)
			}
		}
		if h := svc.Spec.Task.Health; h != nil && h.Timeout > h.Interval {
			fail("services."+svc.Name+".task.health.timeout", "%s must not exceed the interval (%s)", h.Timeout.D(), h.Interval.D())
		}
		if strings.TrimSpace(svc.Spec.Task.Container.Image) == "" {
			fail("services."+svc.Name+".task.container.image", "must be set")
		}
		for _, d := range svc.DependsOn {
			field := "services." + svc.Name + ".depends_on." + d.Service
			dep, ok := s.Service(d.Service)
			switch {
			case !ok && d.Required:
				fail(field, "no service %q in the stack", d.Service)
			case !ok:
			case d.Condition == Healthy && dep.Spec.Task.Health == nil:
				fail(field, "condition service_healthy: %s has no health check", d.Service)
			case d.Condition == Completed && (dep.Spec.Task.Restart.Condition == api.RestartAny || dep.Spec.Task.Restart.Condition == ""):
				fail(field, "condition service_completed_successfully: %s restarts whenever it stops (restart condition any); give it restart: \"no\" or on-failure", d.Service)
			}
		}
	}
	if cyc := cycle(s); cyc != nil {
		fail("services."+cyc[0]+".depends_on", "dependency cycle: %s", strings.Join(cyc, " -> "))
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// FieldError is a problem with one field, named by its path in the file
// (services.web.ports[1]); readers of files add the file and line.
type FieldError struct {
	File  string // empty when unknown
	Line  int    // 0 when unknown
	Field string
	Msg   string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors are every problem found, one a line.
type Errors []*FieldError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each FieldError.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// cycle returns one depends_on cycle (first service repeated at the end),
// or nil.
func cycle(s Stack) []string {
	deps := map[string][]string{}
	var names []string
	for _, svc := range s.Services {
		names = append(names, svc.Name)
		for _, d := range svc.DependsOn {
			deps[svc.Name] = append(deps[svc.Name], d.Service)
		}
	}
	sort.Strings(names)
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(n string) []string
	visit = func(n string) []string {
		switch state[n] {
		case onPath:
			for i, p := range path {
				if p == n {
					return append(append([]string(nil), path[i:]...), n)
				}
			}
		case done:
			return nil
		}
		state[n] = onPath
		path = append(path, n)
		for _, d := range deps[n] {
			if c := visit(d); c != nil {
				return c
			}
		}
		path = path[:len(path)-1]
		state[n] = done
		return nil
	}
	for _, n := range names {
		if c := visit(n); c != nil {
			return c
		}
	}
	return nil
}

// Order returns the services in waves: every service's dependencies are in
// an earlier wave. Check must have passed (no cycle).
func Order(s Stack) [][]string {
	in := map[string]bool{}
	for _, svc := range s.Services {
		in[svc.Name] = true
	}
	placed := map[string]bool{}
	var waves [][]string
	for len(placed) < len(in) {
		var wave []string
		for _, svc := range s.Services {
			if placed[svc.Name] {
				continue
			}
			ready := true
			for _, d := range svc.DependsOn {
				if in[d.Service] && !placed[d.Service] {
					ready = false
				}
			}
			if ready {
				wave = append(wave, svc.Name)
			}
		}
		if len(wave) == 0 {
			return waves // a cycle; Check reports it
		}
		sort.Strings(wave)
		for _, n := range wave {
			placed[n] = true
		}
		waves = append(waves, wave)
	}
	return waves
}
