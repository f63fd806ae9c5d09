package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// serviceFlags are the flags of `service create` and `service update`, kept
// as strings until specFromFlags parses them so every error names its flag.
type serviceFlags struct {
	image           string
	replicas        uint64
	mode            string
	ports           []string // --publish
	portAlias       []string // --port
	env             []string
	labels          []string
	containerLabels []string
	constraints     []string
	command         string
	args            []string
	workdir         string
	user            string
	hostname        string
	mounts          []string
	readOnly        bool
	reserveCPU      string
	reserveMemory   string
	limitCPU        string
	limitMemory     string
	limitPids       int64
	maxPerNode      uint64
	healthCmd       string
	healthHTTP      string
	healthTCP       uint16
	healthInterval  time.Duration
	healthTimeout   time.Duration
	healthRetries   uint64
	healthStart     time.Duration
	restartCond     string
	restartDelay    time.Duration
	restartMax      uint64
	restartWindow   time.Duration
	stopSignal      string
	stopGrace       time.Duration
	updateStrategy  string
	updateParallel  uint64
	updateDelay     time.Duration
	updateOrder     string
	updateFailure   string
	canaryWeight    uint32
	updateMonitor   time.Duration
	maxFailureRatio float64
	keep            time.Duration
	canarySteps     []uint
	canaryInterval  time.Duration
	canaryMaxErrors string
	canaryMinConns  uint64
	keepUnhealthy   bool
	version         string
	refs            secretFlags
	disconnect      disconnectFlags
}

// specFromFlags builds a ServiceSpec. It is pure so that every flag's path
// into the spec is table-tested: earlier orchestrators lost fields here.
func specFromFlags(name string, f *serviceFlags, set func(string) bool) (api.ServiceSpec, error) {
	s := api.ServiceSpec{
		Name:     name,
		Mode:     api.ModeReplicated,
		Replicas: 1,
		Update:   api.UpdateConfig{Strategy: api.StrategyRolling, Parallelism: 1, Order: "stop-first", FailureAction: "pause"},
		Task: api.TaskSpec{
			Restart: api.RestartPolicy{Condition: api.RestartAny, Delay: api.Duration(100 * time.Millisecond), MaxDelay: api.Duration(10 * time.Second)},
		},
	}
	return applyFlags(s, f, set)
}

// applyFlags overlays the flags the user set on an existing spec (update) or
// on the defaults (create).
func applyFlags(s api.ServiceSpec, f *serviceFlags, set func(string) bool) (api.ServiceSpec, error) {
	var err error
	c := &s.Task.Container
	if set("image") {
		c.Image = f.image
	}
	if set("mode") {
		switch api.ServiceMode(f.mode) {
		case api.ModeReplicated, api.ModeGlobal:
			s.Mode = api.ServiceMode(f.mode)
		default:
			return s, fmt.Errorf("--mode %q: must be replicated or global", f.mode)
		}
	}
	if set("replicas") {
		if s.Mode == api.ModeGlobal {
			return s, fmt.Errorf("--replicas: a global service runs one task per node; drop --replicas or use --mode replicated")
		}
		s.Replicas = f.replicas
	}
	if s.Mode == api.ModeGlobal {
		s.Replicas = 0
	}
	if set("publish") {
		s.Ports = nil
		for _, p := range append(append([]string(nil), f.ports...), f.portAlias...) {
			pc, err := parsePort(p)
			if err != nil {
				return s, err
			}
			s.Ports = append(s.Ports, pc)
		}
	}
	if set("env") {
		for _, e := range f.env {
			if !strings.Contains(e, "=") || strings.HasPrefix(e, "=") {
				return s, fmt.Errorf("--env %q: must be KEY=VALUE", e)
			}
		}
		c.Env = append([]string(nil), f.env...)
	}
	if set("label") {
		if s.Labels, err = parseKV("--label", f.labels); err != nil {
			return s, err
		}
	}
	if set("container-label") {
		if c.Labels, err = parseKV("--container-label", f.containerLabels); err != nil {
			return s, err
		}
	}
	if set("constraint") {
		s.Task.Placement.Constraints = append([]string(nil), f.constraints...)
	}
	if set("replicas-max-per-node") {
		s.Task.Placement.MaxReplicas = f.maxPerNode
	}
	if set("entrypoint") {
		c.Command = strings.Fields(f.command)
	}
	if set("args") {
		c.Args = append([]string(nil), f.args...)
	}
	if set("workdir") {
		c.Dir = f.workdir
	}
	if set("user") {
		c.User = f.user
	}
	if set("hostname") {
		c.Hostname = f.hostname
	}
	if set("read-only") {
		c.ReadOnly = f.readOnly
	}
	if set("mount") {
		c.Mounts = nil
		for _, m := range f.mounts {
			mt, err := parseMount(m)
			if err != nil {
				return s, err
			}
			c.Mounts = append(c.Mounts, mt)
		}
	}
	if err := applySecretFlags(c, &f.refs, set); err != nil {
		return s, err
	}
	if set("stop-signal") {
		c.StopSignal = f.stopSignal
	}
	if set("stop-grace-period") {
		c.StopGrace = api.Duration(f.stopGrace)
	}
	r := &s.Task.Resources
	if set("reserve-cpu") {
		if r.Reservations.NanoCPUs, err = parseCPU("--reserve-cpu", f.reserveCPU); err != nil {
			return s, err
		}
	}
	if set("limit-cpu") {
		if r.Limits.NanoCPUs, err = parseCPU("--limit-cpu", f.limitCPU); err != nil {
			return s, err
		}
	}
	if set("reserve-memory") {
		if r.Reservations.MemoryBytes, err = parseBytes("--reserve-memory", f.reserveMemory); err != nil {
			return s, err
		}
	}
	if set("limit-memory") {
		if r.Limits.MemoryBytes, err = parseBytes("--limit-memory", f.limitMemory); err != nil {
			return s, err
		}
	}
	if set("limit-pids") {
		r.Limits.Pids = f.limitPids
	}
	if n := countSet(set, "health-cmd", "health-http", "health-tcp"); n > 1 {
		return s, fmt.Errorf("--health-cmd, --health-http and --health-tcp: choose one")
	}
	switch {
	case set("health-cmd"):
		s.Task.Health = &api.HealthCheck{Kind: api.HealthExec, Command: []string{"/bin/sh", "-c", f.healthCmd}}
	case set("health-http"):
		if !strings.HasPrefix(f.healthHTTP, "/") {
			return s, fmt.Errorf("--health-http %q: must be a path starting with /", f.healthHTTP)
		}
		s.Task.Health = &api.HealthCheck{Kind: api.HealthHTTP, Path: f.healthHTTP}
	case set("health-tcp"):
		s.Task.Health = &api.HealthCheck{Kind: api.HealthTCP, Port: f.healthTCP}
	}
	if h := s.Task.Health; h != nil {
		if h.Interval == 0 || set("health-interval") {
			h.Interval = api.Duration(f.healthInterval)
		}
		if h.Timeout == 0 || set("health-timeout") {
			h.Timeout = api.Duration(f.healthTimeout)
		}
		if h.Retries == 0 || set("health-retries") {
			h.Retries = f.healthRetries
		}
		if set("health-start-period") {
			h.StartPeriod = api.Duration(f.healthStart)
		}
		if set("health-keep-unhealthy") {
			h.KeepUnhealthy = f.keepUnhealthy
		}
		if h.Timeout > h.Interval && !set("health-timeout") {
			h.Timeout = h.Interval // a short interval implies a short timeout
		}
	} else if countSet(set, "health-interval", "health-timeout", "health-retries", "health-start-period", "health-keep-unhealthy") > 0 {
		return s, fmt.Errorf("--health-interval/--health-timeout/--health-retries/--health-start-period/--health-keep-unhealthy need a check: add --health-cmd, --health-http or --health-tcp")
	}
	rp := &s.Task.Restart
	if set("restart-condition") {
		switch api.RestartCondition(f.restartCond) {
		case api.RestartNone, api.RestartOnFailure, api.RestartAny:
			rp.Condition = api.RestartCondition(f.restartCond)
		default:
			return s, fmt.Errorf("--restart-condition %q: must be none, on-failure or any", f.restartCond)
		}
	}
	if set("restart-delay") {
		rp.Delay = api.Duration(f.restartDelay)
	}
	if set("restart-max-attempts") {
		rp.MaxAttempts = f.restartMax
	}
	if set("restart-window") {
		rp.Window = api.Duration(f.restartWindow)
	}
	u := &s.Update
	if set("update-strategy") {
		switch api.UpdateStrategy(f.updateStrategy) {
		case api.StrategyRolling, api.StrategyBlueGreen, api.StrategyCanary:
			u.Strategy = api.UpdateStrategy(f.updateStrategy)
		default:
			return s, fmt.Errorf("--update-strategy %q: must be rolling, blue-green or canary", f.updateStrategy)
		}
	}
	if set("update-parallelism") {
		u.Parallelism = f.updateParallel
	}
	if set("update-delay") {
		u.Delay = api.Duration(f.updateDelay)
	}
	if set("update-order") {
		if f.updateOrder != "stop-first" && f.updateOrder != "start-first" {
			return s, fmt.Errorf("--update-order %q: must be stop-first or start-first", f.updateOrder)
		}
		u.Order = f.updateOrder
	}
	if set("update-failure-action") {
		switch f.updateFailure {
		case "pause", "rollback", "continue":
			u.FailureAction = f.updateFailure
		default:
			return s, fmt.Errorf("--update-failure-action %q: must be pause, rollback or continue", f.updateFailure)
		}
	}
	if set("canary-weight") {
		if f.canaryWeight > 100 {
			return s, fmt.Errorf("--canary-weight %d: must be between 0 and 100", f.canaryWeight)
		}
		u.CanaryWeight = f.canaryWeight
		if !set("update-strategy") {
			u.Strategy = api.StrategyCanary
		}
	}
	if set("update-monitor") {
		u.Monitor = api.Duration(f.updateMonitor)
	}
	if set("update-max-failure-ratio") {
		if f.maxFailureRatio < 0 || f.maxFailureRatio > 1 {
			return s, fmt.Errorf("--update-max-failure-ratio %g: must be between 0 and 1", f.maxFailureRatio)
		}
		u.MaxFailureRatio = f.maxFailureRatio
	}
	if set("bluegreen-keep") {
		if f.keep <= 0 {
			return s, fmt.Errorf("--bluegreen-keep %s: must be positive", f.keep)
		}
		u.Keep = api.Duration(f.keep)
	}
	if set("canary-steps") {
		u.CanarySteps = nil
		last := uint(0)
		for _, w := range f.canarySteps {
			if w == 0 || w > 100 || w <= last {
				return s, fmt.Errorf("--canary-steps %v: must rise, each between 1 and 100", f.canarySteps)
			}
			u.CanarySteps = append(u.CanarySteps, uint32(w))
			last = w
		}
		if !set("update-strategy") {
			u.Strategy = api.StrategyCanary
		}
		if !set("canary-weight") && len(u.CanarySteps) > 0 {
			u.CanaryWeight = u.CanarySteps[0]
		}
		if !set("canary-interval") && u.CanaryInterval == 0 {
			u.CanaryInterval = api.Duration(f.canaryInterval)
		}
	}
	if set("canary-interval") {
		u.CanaryInterval = api.Duration(f.canaryInterval)
	}
	if set("canary-max-error-rate") {
		r, err := parseRate(f.canaryMaxErrors)
		if err != nil {
			return s, fmt.Errorf("--canary-max-error-rate %q: %w", f.canaryMaxErrors, err)
		}
		u.CanaryMaxErrorRate = r
		if !set("update-strategy") && r > 0 {
			u.Strategy = api.StrategyCanary
		}
	}
	if set("canary-min-connections") {
		u.CanaryMinConnections = f.canaryMinConns
	}
	if set("version") {
		s.Version = f.version
	}
	if err := applyDisconnectFlags(&s, &f.disconnect, set); err != nil {
		return s, err
	}
	return s, nil
}

// parseRate reads a fraction written as a percentage ("1%", "0.5%") or as
// a number between 0 and 1 ("0.01").
func parseRate(v string) (float64, error) {
	pct := strings.HasSuffix(v, "%")
	r, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(v, "%")), 64)
	if err != nil {
		return 0, errors.New("want a percentage (1%) or a fraction (0.01)")
	}
	if pct {
		r /= 100
	}
	if r < 0 || r >= 1 {
		return 0, errors.New("must be at least 0% and below 100%")
	}
	return r, nil
}

func countSet(set func(string) bool, names ...string) int {
	n := 0
	for _, name := range names {
		if set(name) {
			n++
		}
	}
	return n
}

// parsePort reads PUBLISHED:TARGET[/tcp|udp] or TARGET[/proto] (VIP only).
func parsePort(s string) (api.PortConfig, error) {
	pc := api.PortConfig{Protocol: api.TCP}
	spec := s
	if i := strings.LastIndex(spec, "/"); i >= 0 {
		switch p := api.Protocol(strings.ToLower(spec[i+1:])); p {
		case api.TCP, api.UDP:
			pc.Protocol = p
		default:
			return pc, fmt.Errorf("--publish %q: protocol must be tcp or udp", s)
		}
		spec = spec[:i]
	}
	parts := strings.Split(spec, ":")
	port := func(v string) (uint16, error) {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("--publish %q: %q is not a port (1-65535)", s, v)
		}
		return uint16(n), nil
	}
	var err error
	switch len(parts) {
	case 1:
		pc.TargetPort, err = port(parts[0])
	case 2:
		if pc.PublishedPort, err = port(parts[0]); err == nil {
			pc.TargetPort, err = port(parts[1])
		}
	default:
		err = fmt.Errorf("--publish %q: must be PUBLISHED:TARGET[/tcp|udp]", s)
	}
	return pc, err
}

// parseMount reads type=bind|volume|tmpfs,source=…,target=/b[,readonly][,volume-nocopy] or the
// short SOURCE:/b[:ro], where SOURCE is an absolute path (a bind) or a volume name (docker -v).
func parseMount(s string) (api.Mount, error) {
	var m api.Mount
	if !strings.Contains(s, "=") {
		parts := strings.Split(s, ":")
		if len(parts) < 2 || len(parts) > 3 {
			return m, fmt.Errorf("--mount %q: must be SOURCE:TARGET[:ro] or type=…,source=…,target=…", s)
		}
		m = api.Mount{Type: api.MountBind, Source: parts[0], Target: parts[1]}
		if api.ValidVolumeName(parts[0]) == nil {
			m.Type = api.MountVolume
		}
		if len(parts) == 3 {
			if parts[2] != "ro" && parts[2] != "rw" {
				return m, fmt.Errorf("--mount %q: mode must be ro or rw", s)
			}
			m.ReadOnly = parts[2] == "ro"
		}
	} else {
		m.Type = api.MountBind
		for _, kv := range strings.Split(s, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "type":
				m.Type = api.MountType(v)
			case "source", "src":
				m.Source = v
			case "target", "dst", "destination":
				m.Target = v
			case "readonly", "ro":
				m.ReadOnly = v == "" || v == "true" || v == "1"
			case "volume-nocopy":
				m.NoCopy = v == "" || v == "true" || v == "1"
			case "tmpfs-size":
				n, err := parseBytes("--mount tmpfs-size", v)
				if err != nil {
					return m, err
				}
				m.TmpfsSize = n
			default:
				return m, fmt.Errorf("--mount %q: unknown option %q", s, k)
			}
		}
	}
	switch m.Type {
	case api.MountBind:
		if !strings.HasPrefix(m.Source, "/") {
			return m, fmt.Errorf("--mount %q: a bind source must be an absolute path", s)
		}
	case api.MountVolume:
		if err := api.ValidVolumeName(m.Source); err != nil {
			return m, fmt.Errorf("--mount %q: %w", s, err)
		}
	case api.MountTmpfs:
	default:
		return m, fmt.Errorf("--mount %q: type must be bind, tmpfs or volume", s)
	}
	if m.NoCopy && m.Type != api.MountVolume {
		return m, fmt.Errorf("--mount %q: volume-nocopy applies to volume mounts only", s)
	}
	if !strings.HasPrefix(m.Target, "/") {
		return m, fmt.Errorf("--mount %q: target must be an absolute path", s)
	}
	return m, nil
}

func parseKV(flag string, in []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range in {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: must be KEY=VALUE", flag, kv)
		}
		out[k] = v
	}
	return out, nil
}

// parseCPU reads a number of CPUs ("0.5", "2") into nano-CPUs.
func parseCPU(flag, s string) (int64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("%s %q: must be a number of CPUs such as 0.5 or 2", flag, s)
	}
	return int64(f * 1e9), nil
}

// parseBytes reads 512M, 1G, 64k, 100 (bytes).
func parseBytes(flag, s string) (int64, error) {
	t := strings.TrimSpace(strings.ToLower(s))
	t = strings.TrimSuffix(t, "b")
	t = strings.TrimSuffix(t, "i")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k':
			mult, t = 1<<10, t[:n-1]
		case 'm':
			mult, t = 1<<20, t[:n-1]
		case 'g':
			mult, t = 1<<30, t[:n-1]
		case 't':
			mult, t = 1<<40, t[:n-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%s %q: must be a size such as 512M or 1G", flag, s)
	}
	return int64(v * float64(mult)), nil
}
