package apiserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"path"
	"reflect"
	"slices"
	"strings"

	"github.com/distribution/reference"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/scheduler"
)

// specError names the service and the offending field, the way the operator
// wrote it in a compose or spec file.
type specError struct {
	service string
	field   string
	msg     string
}

func (e *specError) Error() string {
	return fmt.Sprintf("service %q: %s: %s", e.service, e.field, e.msg)
}

// isDNSLabel reports whether s is an RFC 1123 label, with '_' allowed inside
// as Swarm and Compose stacks name services (STACK_web): service names
// become DNS names (<service> and tasks.<service>), and the node's DNS
// server and resolvers accept underscores.
func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '_') && i > 0 && i < len(s)-1:
		default:
			return false
		}
	}
	return true
}

// withDefaults fills what a spec may leave out. The stored spec then says
// exactly what will run, and later defaults changes do not alter it.
func withDefaults(s api.ServiceSpec) api.ServiceSpec {
	if s.Mode == "" {
		s.Mode = api.ModeReplicated
	}
	if len(s.Ports) > 0 {
		ports := make([]api.PortConfig, len(s.Ports))
		copy(ports, s.Ports)
		for i := range ports {
			if ports[i].Protocol == "" {
				ports[i].Protocol = api.TCP
			}
		}
		s.Ports = ports
	}
	if s.Update.Strategy == "" {
		s.Update.Strategy = api.StrategyRolling
	}
	if s.Update.Parallelism == 0 {
		s.Update.Parallelism = 1
	}
	if s.Task.Restart.Condition == "" {
		s.Task.Restart.Condition = api.RestartAny
	}
	return s
}

// validateSpec checks a spec (after withDefaults) against itself and against
// the other services: published ports are cluster-wide, because every node
// listens on them.
func validateSpec(s api.ServiceSpec, selfID string, others []*api.Service) error {
	name := s.Name
	fail := func(field, format string, args ...any) error {
		return &specError{service: name, field: field, msg: fmt.Sprintf(format, args...)}
	}
	if !isDNSLabel(s.Name) {
		return fail("name", "must be a DNS label: 1-63 characters a-z, 0-9, '-' and '_', starting and ending with a letter or digit")
	}
	switch s.Mode {
	case api.ModeReplicated:
	case api.ModeGlobal:
		if s.Replicas != 0 {
			return fail("replicas", "must be 0 for a global service (it runs one task per eligible node)")
		}
	default:
		return fail("mode", "must be %q or %q, not %q", api.ModeReplicated, api.ModeGlobal, s.Mode)
	}
	if strings.TrimSpace(s.Task.Container.Image) == "" {
		return fail("task.container.image", "must not be empty")
	}
	// The runtime resolves the image with the same grammar; a reference it
	// cannot parse would only fail later, on every node, as a task error.
	if _, err := reference.ParseNormalizedNamed(s.Task.Container.Image); err != nil {
		return fail("task.container.image", "%q: %v", s.Task.Container.Image, err)
	}
	if err := validateTask(s.Task, fail); err != nil {
		return err
	}

	type portKey struct {
		proto api.Protocol
		port  uint16
	}
	seen := map[portKey]int{}
	for i, p := range s.Ports {
		f := fmt.Sprintf("ports[%d]", i)
		if p.Protocol != api.TCP && p.Protocol != api.UDP {
			return fail(f+".protocol", "must be tcp or udp, not %q", p.Protocol)
		}
		if p.TargetPort == 0 {
			return fail(f+".target_port", "must be between 1 and 65535")
		}
		if p.PublishedPort == 0 {
			continue
		}
		k := portKey{p.Protocol, p.PublishedPort}
		if j, dup := seen[k]; dup {
			return fail(f+".published_port", "%d/%s is also published by ports[%d]", p.PublishedPort, p.Protocol, j)
		}
		seen[k] = i
	}
	for _, o := range others {
		if o == nil || o.ID == selfID {
			continue
		}
		for i, p := range s.Ports {
			if p.PublishedPort == 0 {
				continue
			}
			for _, q := range o.Spec.Ports {
				proto := q.Protocol
				if proto == "" {
					proto = api.TCP
				}
				if q.PublishedPort == p.PublishedPort && proto == p.Protocol {
					return fail(fmt.Sprintf("ports[%d].published_port", i), "%d/%s is already published by service %q", p.PublishedPort, p.Protocol, o.Spec.Name)
				}
			}
		}
	}

	u := s.Update
	switch u.Strategy {
	case api.StrategyRolling, api.StrategyBlueGreen, api.StrategyCanary:
	default:
		return fail("update.strategy", "must be rolling, blue-green or canary, not %q", u.Strategy)
	}
	if u.Delay < 0 {
		return fail("update.delay", "must be ≥ 0")
	}
	if u.CanaryWeight > 100 {
		return fail("update.canary_weight", "must be a percentage between 0 and 100, not %d", u.CanaryWeight)
	}
	if u.CanaryMaxErrorRate < 0 || u.CanaryMaxErrorRate >= 1 || math.IsNaN(u.CanaryMaxErrorRate) {
		return fail("update.canary_max_error_rate", "must be a fraction from 0 up to 1 (0.01 = 1%%), not %g", u.CanaryMaxErrorRate)
	}
	switch u.Order {
	case "", "stop-first", "start-first":
	default:
		return fail("update.order", "must be stop-first or start-first, not %q", u.Order)
	}
	switch u.FailureAction {
	case "", "pause", "rollback", "continue":
	default:
		return fail("update.failure_action", "must be pause, rollback or continue, not %q", u.FailureAction)
	}
	return validateDisconnect(s.Disconnect, fail)
}

func validateDisconnect(d *api.DisconnectPolicy, fail func(field, format string, args ...any) error) error {
	if d == nil {
		return nil
	}
	if d.Grace != nil && *d.Grace < 0 {
		return fail("disconnect.grace", "must be ≥ 0 or inf")
	}
	if d.StopAfter < 0 {
		return fail("disconnect.stop_after", "must be ≥ 0")
	}
	if d.Reconcile != "" && !slices.Contains(api.ReconcilePolicies, d.Reconcile) {
		return fail("disconnect.reconcile", "must be keep-original, keep-replacement, healthiest or longest-running, not %q", d.Reconcile)
	}
	return nil
}

func validateTask(t api.TaskSpec, fail func(field, format string, args ...any) error) error {
	c := t.Container
	if c.StopGrace < 0 {
		return fail("task.container.stop_grace", "must be ≥ 0")
	}
	for i, m := range c.Mounts {
		f := fmt.Sprintf("task.container.mounts[%d]", i)
		switch m.Type {
		case api.MountBind, api.MountVolume:
			if m.Source == "" {
				return fail(f+".source", "must not be empty for a %s mount", m.Type)
			}
		case api.MountTmpfs:
			if m.TmpfsSize < 0 {
				return fail(f+".tmpfs_size", "must be ≥ 0")
			}
		default:
			return fail(f+".type", "must be bind, tmpfs or volume, not %q", m.Type)
		}
		if !path.IsAbs(m.Target) {
			return fail(f+".target", "must be an absolute path, not %q", m.Target)
		}
	}
	for _, r := range []struct {
		field string
		v     int64
	}{
		{"task.resources.limits.nano_cpus", t.Resources.Limits.NanoCPUs},
		{"task.resources.limits.memory_bytes", t.Resources.Limits.MemoryBytes},
		{"task.resources.limits.pids", t.Resources.Limits.Pids},
		{"task.resources.reservations.nano_cpus", t.Resources.Reservations.NanoCPUs},
		{"task.resources.reservations.memory_bytes", t.Resources.Reservations.MemoryBytes},
		{"task.resources.reservations.pids", t.Resources.Reservations.Pids},
	} {
		if r.v < 0 {
			return fail(r.field, "must be ≥ 0")
		}
	}
	rp := t.Restart
	switch rp.Condition {
	case api.RestartNone, api.RestartOnFailure, api.RestartAny:
	default:
		return fail("task.restart.condition", "must be none, on-failure or any, not %q", rp.Condition)
	}
	for _, d := range []struct {
		field string
		v     api.Duration
	}{{"task.restart.delay", rp.Delay}, {"task.restart.max_delay", rp.MaxDelay}, {"task.restart.window", rp.Window}} {
		if d.v < 0 {
			return fail(d.field, "must be ≥ 0")
		}
	}
	if rp.MaxDelay != 0 && rp.MaxDelay < rp.Delay {
		return fail("task.restart.max_delay", "must be ≥ task.restart.delay (%s)", rp.Delay.D())
	}
	for i, s := range t.Placement.Constraints {
		if _, err := scheduler.ParseConstraint(s); err != nil {
			return fail(fmt.Sprintf("task.placement.constraints[%d]", i), "%v", err)
		}
	}
	if h := t.Health; h != nil {
		switch h.Kind {
		case api.HealthExec:
			if len(h.Command) == 0 {
				return fail("task.health.command", "must not be empty for an exec health check")
			}
		case api.HealthHTTP:
			if !strings.HasPrefix(h.Path, "/") {
				return fail("task.health.path", "must start with / for an http health check, not %q", h.Path)
			}
		case api.HealthTCP:
		default:
			return fail("task.health.kind", "must be exec, http or tcp, not %q", h.Kind)
		}
		if h.Kind != api.HealthExec && len(h.Command) > 0 {
			return fail("task.health.command", "is only used by exec health checks, not %s", h.Kind)
		}
		if h.Interval <= 0 {
			return fail("task.health.interval", "must be > 0")
		}
		if h.Timeout <= 0 {
			return fail("task.health.timeout", "must be > 0")
		}
		if h.Timeout > h.Interval {
			return fail("task.health.timeout", "must not exceed task.health.interval (%s)", h.Interval.D())
		}
		if h.StartPeriod < 0 {
			return fail("task.health.start_period", "must be ≥ 0")
		}
	}
	return nil
}

// decodeSpec reads a ServiceSpec body. A type error (replicas: -1) is
// reported like a validation error, naming the service and the field.
func decodeSpec(r *http.Request) (api.ServiceSpec, error) {
	var raw json.RawMessage
	if err := decodeBody(r, &raw); err != nil {
		return api.ServiceSpec{}, err
	}
	var spec api.ServiceSpec
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err := dec.Decode(&spec)
	if err == nil {
		return spec, nil
	}
	var named struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(raw, &named)
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		want := te.Type.String()
		switch te.Type.Kind() {
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			want = "a whole number ≥ 0"
		}
		return spec, errorf(http.StatusBadRequest, "service %q: %s: must be %s, not %s", named.Name, te.Field, want, te.Value)
	}
	return spec, errorf(http.StatusBadRequest, "service %q: %v", named.Name, err)
}
