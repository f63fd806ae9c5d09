package apiserver

import (
	"strings"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
)

func TestValidateSpec(t *testing.T) {
	base := func() api.ServiceSpec {
		return withDefaults(api.ServiceSpec{
			Name: "web", Replicas: 1,
			Task:  api.TaskSpec{Container: api.ContainerSpec{Image: "warren/demo:1"}},
			Ports: []api.PortConfig{{TargetPort: 80, PublishedPort: 8080}},
		})
	}
	hc := func(h api.HealthCheck) func(*api.ServiceSpec) { return func(s *api.ServiceSpec) { s.Task.Health = &h } }
	other := &api.Service{ID: "s2", Spec: api.ServiceSpec{Name: "api", Ports: []api.PortConfig{{Protocol: api.TCP, TargetPort: 1, PublishedPort: 9090}}}}

	for _, tc := range []struct {
		name   string
		mutate func(*api.ServiceSpec)
		want   string // substring of the error; "" = valid
	}{
		{"valid", func(*api.ServiceSpec) {}, ""},
		{"upper-case name", func(s *api.ServiceSpec) { s.Name = "Web" }, `service "Web": name: must be a DNS label`},
		{"name too long", func(s *api.ServiceSpec) { s.Name = strings.Repeat("a", 64) }, "name: must be a DNS label"},
		{"name ends with dash", func(s *api.ServiceSpec) { s.Name = "web-" }, "name: must be a DNS label"},
		{"stack name with underscore", func(s *api.ServiceSpec) { s.Name = "shop_web" }, ""},
		{"name starts with underscore", func(s *api.ServiceSpec) { s.Name = "_web" }, "name: must be a DNS label"},
		{"empty image", func(s *api.ServiceSpec) { s.Task.Container.Image = " " }, `service "web": task.container.image: must not be empty`},
		{"global with replicas", func(s *api.ServiceSpec) { s.Mode = api.ModeGlobal }, "replicas: must be 0 for a global service"},
		{"unknown mode", func(s *api.ServiceSpec) { s.Mode = "daemon" }, "mode: must be"},
		{"target port 0", func(s *api.ServiceSpec) { s.Ports[0].TargetPort = 0 }, "ports[0].target_port: must be between 1 and 65535"},
		{"bad protocol", func(s *api.ServiceSpec) { s.Ports[0].Protocol = "sctp" }, "ports[0].protocol"},
		{"duplicate published port in spec", func(s *api.ServiceSpec) {
			s.Ports = append(s.Ports, api.PortConfig{Protocol: api.TCP, TargetPort: 81, PublishedPort: 8080})
		}, "ports[1].published_port: 8080/tcp is also published by ports[0]"},
		{"same port other protocol", func(s *api.ServiceSpec) {
			s.Ports = append(s.Ports, api.PortConfig{Protocol: api.UDP, TargetPort: 81, PublishedPort: 8080})
		}, ""},
		{"port taken by another service", func(s *api.ServiceSpec) { s.Ports[0].PublishedPort = 9090 }, `9090/tcp is already published by service "api"`},
		{"bad constraint", func(s *api.ServiceSpec) { s.Task.Placement.Constraints = []string{"node.labels.site"} }, "task.placement.constraints[0]"},
		{"negative stop grace", func(s *api.ServiceSpec) { s.Task.Container.StopGrace = -1 }, "task.container.stop_grace: must be ≥ 0"},
		{"negative restart delay", func(s *api.ServiceSpec) { s.Task.Restart.Delay = -1 }, "task.restart.delay: must be ≥ 0"},
		{"negative update delay", func(s *api.ServiceSpec) { s.Update.Delay = -1 }, "update.delay: must be ≥ 0"},
		{"canary weight over 100", func(s *api.ServiceSpec) { s.Update.CanaryWeight = 101 }, "update.canary_weight"},
		{"canary max error rate of 100%", func(s *api.ServiceSpec) { s.Update.CanaryMaxErrorRate = 1 }, "update.canary_max_error_rate"},
		{"negative canary max error rate", func(s *api.ServiceSpec) { s.Update.CanaryMaxErrorRate = -0.01 }, "update.canary_max_error_rate"},
		{"negative memory", func(s *api.ServiceSpec) { s.Task.Resources.Limits.MemoryBytes = -1 }, "task.resources.limits.memory_bytes: must be ≥ 0"},
		{"relative mount target", func(s *api.ServiceSpec) {
			s.Task.Container.Mounts = []api.Mount{{Type: api.MountTmpfs, Target: "tmp"}}
		}, "task.container.mounts[0].target: must be an absolute path"},
		{"exec check without command", hc(api.HealthCheck{Kind: api.HealthExec, Interval: 1e9, Timeout: 1e9}), "task.health.command: must not be empty"},
		{"http check without path", hc(api.HealthCheck{Kind: api.HealthHTTP, Interval: 1e9, Timeout: 1e9}), "task.health.path"},
		{"check without interval", hc(api.HealthCheck{Kind: api.HealthTCP, Timeout: 1e9}), "task.health.interval: must be > 0"},
		{"timeout over interval", hc(api.HealthCheck{Kind: api.HealthTCP, Interval: 1e9, Timeout: 2e9}), "task.health.timeout: must not exceed"},
		{"command on http check", hc(api.HealthCheck{Kind: api.HealthHTTP, Path: "/", Command: []string{"x"}, Interval: 1e9, Timeout: 1e9}), "only used by exec"},
		{"valid http check", hc(api.HealthCheck{Kind: api.HealthHTTP, Path: "/healthz", Interval: 1e9, Timeout: 1e9}), ""},
		{"disconnect: every policy", func(s *api.ServiceSpec) {
			g := api.GraceForever
			s.Disconnect = &api.DisconnectPolicy{Grace: &g, StopAfter: api.Duration(3600e9), Reconcile: api.ReconcileLongestRunning}
		}, ""},
		{"disconnect: negative grace", func(s *api.ServiceSpec) { g := api.Grace(-1); s.Disconnect = &api.DisconnectPolicy{Grace: &g} }, "disconnect.grace: must be ≥ 0 or inf"},
		{"disconnect: negative stop after", func(s *api.ServiceSpec) { s.Disconnect = &api.DisconnectPolicy{StopAfter: -1} }, "disconnect.stop_after"},
		{"disconnect: unknown reconcile", func(s *api.ServiceSpec) { s.Disconnect = &api.DisconnectPolicy{Reconcile: "newest"} }, `disconnect.reconcile: must be keep-original, keep-replacement, healthiest or longest-running, not "newest"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			tc.mutate(&s)
			err := validateSpec(s, "", []*api.Service{other})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("valid spec refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("invalid spec accepted, want %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}
