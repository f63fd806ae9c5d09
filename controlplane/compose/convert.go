package compose

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/stack"
)

// Options change how strict Convert is.
type Options struct {
	// Strict refuses a file that uses options Warren would ignore.
	Strict bool
	// ReadFile reads the value of a secret or config with a file: source
	// (the path is absolute, as the parser resolved it). Convert reads
	// nothing else; without it such a file is refused.
	ReadFile func(path string) ([]byte, error)
}

// Result is a converted project.
type Result struct {
	// Stack holds the services under their Compose names; stack.Qualify
	// gives them their cluster names.
	Stack stack.Stack
	// Warnings list, once per service, the options Warren ignores, as
	// `docker stack deploy` does.
	Warnings []string
}

// Docker's defaults where Compose leaves a value out, so a file behaves as
// it does under docker; the rest are `warren service create`'s.
const (
	defaultHealthInterval = 30 * time.Second
	defaultHealthTimeout  = 30 * time.Second
	defaultHealthRetries  = 3
	defaultStopGrace      = 10 * time.Second
)

// Convert maps a loaded project onto Warren service specs. It reads nothing
// but its arguments. Every problem is reported, not only the first; each
// names the file, the key and the reason.
func Convert(l *Loaded, o Options) (*Result, error) {
	p := l.Project
	c := &converter{
		project: p,
		file:    fileNames(p.ComposeFiles),
		ignored: map[string][]string{},
	}
	c.sortUnsupported(l.Unsupported)
	if err := stack.ValidStackName(p.Name); err != nil {
		c.fail("name", "%v (choose one with --name)", err)
	}
	res := &Result{Stack: stack.Stack{Name: p.Name}}
	res.Stack.Secrets = c.objects(stack.ObjSecret, secretObjects(p.Secrets), o.ReadFile)
	res.Stack.Configs = c.objects(stack.ObjConfig, configObjects(p.Configs), o.ReadFile)
	res.Stack.Volumes = c.volumes(p.Volumes)
	for _, name := range p.ServiceNames() {
		svc, ok := c.service(p.Services[name])
		if ok {
			res.Stack.Services = append(res.Stack.Services, svc)
		}
	}
	for _, scope := range c.scopes() {
		keys := dedupe(c.ignored[scope])
		what := "service " + scope
		if scope == "" {
			what = "project"
		}
		if o.Strict {
			c.errs = append(c.errs, fmt.Errorf("%s: %s: unsupported options (refused with --strict): %s", c.file, what, strings.Join(keys, ", ")))
			continue
		}
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s: ignoring unsupported options: %s", what, strings.Join(keys, ", ")))
	}
	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}
	if err := stack.Check(res.Stack); err != nil {
		var es stack.Errors
		if errors.As(err, &es) {
			for _, e := range es {
				e.File = c.file
			}
			return nil, es
		}
		return nil, fmt.Errorf("%s: %w", c.file, err)
	}
	return res, nil
}

type converter struct {
	project *types.Project
	file    string
	// ignored holds, by service name ("" for the project), the keys
	// Warren does not honour.
	ignored map[string][]string
	errs    []error
}

func fileNames(files []string) string {
	if len(files) == 0 {
		return "compose file"
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = filepath.Base(f)
	}
	return strings.Join(names, "+")
}

func (c *converter) fail(field, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%s: %s: %s", c.file, field, fmt.Sprintf(format, args...)))
}

func (c *converter) ignore(service, key string) {
	c.ignored[service] = append(c.ignored[service], key)
}

// sortUnsupported files the parser's findings under the service they
// belong to. build is left to Convert, which refuses or notes it itself, so
// it is reported once, with its reason.
func (c *converter) sortUnsupported(paths []string) {
	for _, p := range paths {
		parts := strings.Split(p, ".")
		if parts[0] == "services" && len(parts) >= 3 {
			key := strings.Join(parts[2:], ".")
			key = strings.ReplaceAll(key, ".[]", "")
			switch parts[2] {
			case "build", "networks":
				key = parts[2]
			}
			if parts[2] == "build" {
				continue
			}
			c.ignore(parts[1], key)
			continue
		}
		key := strings.ReplaceAll(p, ".[]", "")
		switch parts[0] {
		case "networks", "jobs", "models":
			key = parts[0]
		}
		c.ignore("", key)
	}
}

func (c *converter) scopes() []string {
	var out []string
	for s := range c.ignored {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func dedupe(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// service converts one Compose service; ok is false when it was refused
// (the reasons are in c.errs).
func (c *converter) service(s types.ServiceConfig) (stack.Service, bool) {
	before := len(c.errs)
	at := "services." + s.Name
	fail := func(field, format string, args ...any) {
		c.fail(at+"."+field, format, args...)
	}
	if !validServiceName(s.Name) {
		c.fail(at, "service name must be lower-case letters, digits, '-' and '_' (it becomes a DNS name)")
	}
	spec := api.ServiceSpec{
		Mode:     api.ModeReplicated,
		Replicas: 1,
		Update:   api.UpdateConfig{Strategy: api.StrategyRolling, Parallelism: 1, Order: "stop-first", FailureAction: "pause"},
		Task: api.TaskSpec{
			Restart: api.RestartPolicy{Condition: api.RestartAny, Delay: api.Duration(100 * time.Millisecond), MaxDelay: api.Duration(10 * time.Second)},
		},
	}
	ct := &spec.Task.Container

	switch {
	case s.Image == "" && s.Build != nil:
		fail("build", "Warren does not build images: add image: with an image built beforehand (docker build, or warren image pack) and loaded with warren image load")
	case s.Image == "":
		fail("image", "must be set: Warren runs images, it does not build them")
	case s.Build != nil:
		c.ignore(s.Name, "build")
	}
	ct.Image = s.Image
	if s.Entrypoint != nil {
		if len(s.Entrypoint) == 0 {
			c.ignore(s.Name, "entrypoint (clearing the image's entrypoint)")
		}
		ct.Command = append([]string(nil), s.Entrypoint...)
	}
	if s.Command != nil {
		if len(s.Command) == 0 {
			c.ignore(s.Name, "command (clearing the image's command)")
		}
		ct.Args = append([]string(nil), s.Command...)
	}
	ct.Env = envList(s.Environment)
	ct.Labels = copyMap(s.Labels)
	ct.User = s.User
	ct.Dir = s.WorkingDir
	ct.Hostname = s.Hostname
	ct.ReadOnly = s.ReadOnly
	ct.StopSignal = s.StopSignal
	ct.StopGrace = api.Duration(defaultStopGrace)
	if s.StopGracePeriod != nil {
		ct.StopGrace = api.Duration(*s.StopGracePeriod)
	}

	c.health(s, &spec.Task, fail)
	c.restart(s, &spec.Task.Restart, fail)
	c.ports(s, &spec, fail)
	c.mounts(s, ct, fail)

	if s.Scale != nil {
		if *s.Scale < 0 {
			fail("scale", "must be ≥ 0")
		} else {
			spec.Replicas = uint64(*s.Scale)
		}
	}
	if d := s.Deploy; d != nil {
		c.deploy(s.Name, d, &spec, fail)
	}
	ct.Secrets = c.refs(stack.ObjSecret, s.Secrets, fail)
	ct.Configs = c.refs(stack.ObjConfig, configRefs(s.Configs), fail)

	var deps []stack.Dependency
	for _, name := range sortedKeys(s.DependsOn) {
		d := s.DependsOn[name]
		cond := stack.Condition(d.Condition)
		switch cond {
		case "":
			cond = stack.Started
		case stack.Started, stack.Healthy, stack.Completed:
		default:
			fail("depends_on."+name+".condition", "must be service_started, service_healthy or service_completed_successfully, not %q", d.Condition)
		}
		if d.Restart {
			c.ignore(s.Name, "depends_on.restart")
		}
		deps = append(deps, stack.Dependency{Service: name, Condition: cond, Required: d.Required})
	}
	return stack.Service{Name: s.Name, DependsOn: deps, Spec: spec}, len(c.errs) == before
}

func validServiceName(n string) bool {
	if n == "" || len(n) > 63 {
		return false
	}
	for i := 0; i < len(n); i++ {
		ch := n[i]
		switch {
		case ch >= 'a' && ch <= 'z', ch >= '0' && ch <= '9':
		case (ch == '-' || ch == '_') && i > 0 && i < len(n)-1:
		default:
			return false
		}
	}
	return true
}

func envList(m types.MappingWithEquals) []string {
	var out []string
	for _, k := range sortedKeys(m) {
		// A variable without a value that the environment does not set is
		// not passed, as in Compose.
		if v := m[k]; v != nil {
			out = append(out, k+"="+*v)
		}
	}
	return out
}

func copyMap[M ~map[string]string](m M) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func sortedKeys[V any, M ~map[string]V](m M) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (c *converter) health(s types.ServiceConfig, t *api.TaskSpec, fail func(string, string, ...any)) {
	h := s.HealthCheck
	if h == nil || h.Disable {
		return
	}
	if len(h.Test) == 0 {
		// Docker would run the image's HEALTHCHECK with these timings;
		// Warren does not read it.
		c.ignore(s.Name, "healthcheck (without test: the image's HEALTHCHECK)")
		return
	}
	hc := &api.HealthCheck{Kind: api.HealthExec, Retries: defaultHealthRetries,
		Interval: api.Duration(defaultHealthInterval), Timeout: api.Duration(defaultHealthTimeout)}
	switch h.Test[0] {
	case "NONE":
		return
	case "CMD":
		hc.Command = append([]string(nil), h.Test[1:]...)
	case "CMD-SHELL":
		hc.Command = []string{"/bin/sh", "-c", strings.Join(h.Test[1:], " ")}
	default:
		fail("healthcheck.test", "must start with CMD, CMD-SHELL or NONE, not %q", h.Test[0])
		return
	}
	if len(hc.Command) == 0 {
		fail("healthcheck.test", "names no command")
		return
	}
	if h.Interval != nil {
		hc.Interval = api.Duration(*h.Interval)
	}
	if h.Timeout != nil {
		hc.Timeout = api.Duration(*h.Timeout)
	} else if hc.Timeout > hc.Interval {
		hc.Timeout = hc.Interval // a short interval implies a short timeout
	}
	if h.Retries != nil {
		hc.Retries = *h.Retries
	}
	if h.StartPeriod != nil {
		hc.StartPeriod = api.Duration(*h.StartPeriod)
	}
	if hc.Interval <= 0 {
		fail("healthcheck.interval", "must be > 0")
	}
	if hc.Timeout > hc.Interval {
		fail("healthcheck.timeout", "%s must not exceed healthcheck.interval (%s)", hc.Timeout.D(), hc.Interval.D())
	}
	t.Health = hc
}

// restart maps deploy.restart_policy, else the legacy restart: key.
func (c *converter) restart(s types.ServiceConfig, rp *api.RestartPolicy, fail func(string, string, ...any)) {
	if s.Deploy != nil && s.Deploy.RestartPolicy != nil {
		r := s.Deploy.RestartPolicy
		switch api.RestartCondition(r.Condition) {
		case "":
		case api.RestartNone, api.RestartOnFailure, api.RestartAny:
			rp.Condition = api.RestartCondition(r.Condition)
		default:
			fail("deploy.restart_policy.condition", "must be none, on-failure or any, not %q", r.Condition)
		}
		if r.Delay != nil {
			rp.Delay = api.Duration(*r.Delay)
			if rp.MaxDelay < rp.Delay {
				rp.MaxDelay = rp.Delay
			}
		}
		if r.MaxAttempts != nil {
			rp.MaxAttempts = *r.MaxAttempts
		}
		if r.Window != nil {
			rp.Window = api.Duration(*r.Window)
		}
		return
	}
	switch policy, arg, _ := strings.Cut(s.Restart, ":"); policy {
	case "":
	case types.RestartPolicyNo:
		rp.Condition = api.RestartNone
	case types.RestartPolicyAlways, types.RestartPolicyUnlessStopped:
		rp.Condition = api.RestartAny
	case types.RestartPolicyOnFailure:
		rp.Condition = api.RestartOnFailure
		if arg != "" {
			n, err := strconv.ParseUint(arg, 10, 64)
			if err != nil {
				fail("restart", "%q: the number of attempts must be a whole number", s.Restart)
			}
			rp.MaxAttempts = n
		}
	default:
		fail("restart", "must be no, always, on-failure[:N] or unless-stopped, not %q", s.Restart)
	}
}

func (c *converter) ports(s types.ServiceConfig, spec *api.ServiceSpec, fail func(string, string, ...any)) {
	targets := map[string]bool{}
	for i, p := range s.Ports {
		f := fmt.Sprintf("ports[%d]", i)
		pc := api.PortConfig{Protocol: api.TCP}
		switch proto := strings.ToLower(p.Protocol); proto {
		case "", "tcp":
		case "udp":
			pc.Protocol = api.UDP
		default:
			fail(f+".protocol", "must be tcp or udp, not %q", p.Protocol)
			continue
		}
		if p.Target == 0 || p.Target > 65535 {
			fail(f+".target", "must be a port between 1 and 65535, not %d", p.Target)
			continue
		}
		pc.TargetPort = uint16(p.Target)
		if p.HostIP != "" {
			// Ignoring it would publish on every address what the file
			// keeps to one (often 127.0.0.1): refuse rather than widen.
			fail(f+".host_ip", "%s: Warren publishes a port on every node's addresses; binding to one address is not supported", p.HostIP)
			continue
		}
		if p.Published != "" {
			n, err := strconv.ParseUint(p.Published, 10, 16)
			if err != nil || n == 0 {
				fail(f+".published", "%q: must be one port between 1 and 65535 (ranges are not supported)", p.Published)
				continue
			}
			pc.PublishedPort = uint16(n)
		}
		if p.Mode == "host" {
			c.ignore(s.Name, "ports.mode=host (Warren publishes through every node)")
		}
		if p.AppProtocol != "" {
			c.ignore(s.Name, "ports.app_protocol")
		}
		targets[fmt.Sprintf("%d/%s", pc.TargetPort, pc.Protocol)] = true
		spec.Ports = append(spec.Ports, pc)
	}
	// expose: reachable on the service VIP only.
	for i, e := range s.Expose {
		f := fmt.Sprintf("expose[%d]", i)
		portStr, proto, _ := strings.Cut(e, "/")
		pc := api.PortConfig{Protocol: api.TCP}
		switch strings.ToLower(proto) {
		case "", "tcp":
		case "udp":
			pc.Protocol = api.UDP
		default:
			fail(f, "%q: protocol must be tcp or udp", e)
			continue
		}
		lo, hi, isRange := strings.Cut(portStr, "-")
		if !isRange {
			hi = lo
		}
		a, err1 := strconv.ParseUint(lo, 10, 16)
		b, err2 := strconv.ParseUint(hi, 10, 16)
		if err1 != nil || err2 != nil || a == 0 || b < a || b-a > 1024 {
			fail(f, "%q: must be a port or a range of at most 1024 ports", e)
			continue
		}
		for n := a; n <= b; n++ {
			pc.TargetPort = uint16(n)
			k := fmt.Sprintf("%d/%s", n, pc.Protocol)
			if !targets[k] {
				targets[k] = true
				spec.Ports = append(spec.Ports, pc)
			}
		}
	}
}

func (c *converter) mounts(s types.ServiceConfig, ct *api.ContainerSpec, fail func(string, string, ...any)) {
	for i, v := range s.Volumes {
		f := fmt.Sprintf("volumes[%d]", i)
		m := api.Mount{Target: v.Target, ReadOnly: v.ReadOnly}
		if !strings.HasPrefix(v.Target, "/") {
			fail(f+".target", "must be an absolute path, not %q", v.Target)
			continue
		}
		switch v.Type {
		case types.VolumeTypeBind:
			m.Type, m.Source = api.MountBind, v.Source
			if !filepath.IsAbs(v.Source) {
				fail(f+".source", "must be a path, not %q", v.Source)
				continue
			}
			if v.Bind != nil && (v.Bind.Propagation != "" || v.Bind.SELinux != "") {
				c.ignore(s.Name, "volumes.bind (propagation, selinux)")
			}
		case types.VolumeTypeVolume:
			if v.Source == "" {
				fail(f, "anonymous volume at %s: give it a name (NAME:%s) so its data has a place", v.Target, v.Target)
				continue
			}
			vol, ok := c.project.Volumes[v.Source]
			if !ok {
				fail(f+".source", "volume %q is not defined under the top-level volumes:", v.Source)
				continue
			}
			m.Type, m.Source = api.MountVolume, vol.Name
			if m.Source == "" {
				m.Source = stack.FullName(c.project.Name, v.Source)
			}
			if v.Volume != nil {
				m.NoCopy = v.Volume.NoCopy
			}
		case types.VolumeTypeTmpfs:
			m.Type = api.MountTmpfs
			if v.Tmpfs != nil {
				m.TmpfsSize = int64(v.Tmpfs.Size)
			}
		default:
			fail(f+".type", "%s mounts are not supported (bind, volume or tmpfs)", v.Type)
			continue
		}
		ct.Mounts = append(ct.Mounts, m)
	}
	for i, t := range s.Tmpfs {
		f := fmt.Sprintf("tmpfs[%d]", i)
		target, opts, _ := strings.Cut(t, ":")
		if !strings.HasPrefix(target, "/") {
			fail(f, "%q: must be an absolute path", t)
			continue
		}
		m := api.Mount{Type: api.MountTmpfs, Target: target}
		for _, o := range strings.Split(opts, ",") {
			k, val, _ := strings.Cut(o, "=")
			switch k {
			case "":
			case "size":
				n, err := parseSize(val)
				if err != nil {
					fail(f, "%q: size %q: %v", t, val, err)
					continue
				}
				m.TmpfsSize = n
			default:
				c.ignore(s.Name, "tmpfs."+k)
			}
		}
		ct.Mounts = append(ct.Mounts, m)
	}
}

// parseSize reads 64m, 1g, 512k or a number of bytes.
func parseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSuffix(strings.ToLower(s), "b"))
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k':
			mult, t = 1<<10, t[:n-1]
		case 'm':
			mult, t = 1<<20, t[:n-1]
		case 'g':
			mult, t = 1<<30, t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("must be a size such as 64m")
	}
	return v * mult, nil
}

func (c *converter) deploy(name string, d *types.DeployConfig, spec *api.ServiceSpec, fail func(string, string, ...any)) {
	switch d.Mode {
	case "", "replicated":
	case "global":
		spec.Mode = api.ModeGlobal
	default:
		fail("deploy.mode", "%q: Warren runs replicated and global services (jobs are not supported)", d.Mode)
	}
	if d.Replicas != nil {
		if *d.Replicas < 0 {
			fail("deploy.replicas", "must be ≥ 0")
		} else {
			spec.Replicas = uint64(*d.Replicas)
		}
	}
	if spec.Mode == api.ModeGlobal {
		if d.Replicas != nil && *d.Replicas != 1 {
			fail("deploy.replicas", "a global service runs one task per node: drop replicas")
		}
		spec.Replicas = 0
	}
	spec.Labels = copyMap(d.Labels)
	switch d.EndpointMode {
	case "", "vip":
	case "dnsrr":
		c.ignore(name, "deploy.endpoint_mode=dnsrr (a service always has a VIP; tasks.NAME resolves to its tasks)")
	default:
		fail("deploy.endpoint_mode", "must be vip or dnsrr, not %q", d.EndpointMode)
	}
	r := &spec.Task.Resources
	if l := d.Resources.Limits; l != nil {
		r.Limits.NanoCPUs = int64(float64(l.NanoCPUs) * 1e9)
		r.Limits.MemoryBytes = int64(l.MemoryBytes)
		r.Limits.Pids = l.Pids
	}
	if l := d.Resources.Reservations; l != nil {
		r.Reservations.NanoCPUs = int64(float64(l.NanoCPUs) * 1e9)
		r.Reservations.MemoryBytes = int64(l.MemoryBytes)
		if l.Pids != 0 {
			c.ignore(name, "deploy.resources.reservations.pids")
		}
	}
	for _, v := range []struct {
		field string
		n     int64
	}{
		{"deploy.resources.limits.cpus", r.Limits.NanoCPUs},
		{"deploy.resources.limits.memory", r.Limits.MemoryBytes},
		{"deploy.resources.limits.pids", r.Limits.Pids},
		{"deploy.resources.reservations.cpus", r.Reservations.NanoCPUs},
		{"deploy.resources.reservations.memory", r.Reservations.MemoryBytes},
	} {
		if v.n < 0 {
			fail(v.field, "must be ≥ 0")
		}
	}
	spec.Task.Placement.Constraints = append([]string(nil), d.Placement.Constraints...)
	if len(spec.Task.Placement.Constraints) == 0 {
		spec.Task.Placement.Constraints = nil
	}
	spec.Task.Placement.MaxReplicas = d.Placement.MaxReplicas
	if u := d.UpdateConfig; u != nil {
		if u.Parallelism != nil {
			// 0 means all at once in Swarm.
			spec.Update.Parallelism = *u.Parallelism
			if spec.Update.Parallelism == 0 {
				spec.Update.Parallelism = max(spec.Replicas, 1)
			}
		}
		spec.Update.Delay = api.Duration(u.Delay)
		switch u.FailureAction {
		case "":
		case "pause", "rollback", "continue":
			spec.Update.FailureAction = u.FailureAction
		default:
			fail("deploy.update_config.failure_action", "must be pause, rollback or continue, not %q", u.FailureAction)
		}
		switch u.Order {
		case "":
		case "stop-first", "start-first":
			spec.Update.Order = u.Order
		default:
			fail("deploy.update_config.order", "must be stop-first or start-first, not %q", u.Order)
		}
	}
}
