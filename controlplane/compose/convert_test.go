package compose

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/stack"
)

// load writes files (name → content) into a fresh directory and converts
// the first one named compose.yaml plus any override.yaml.
func load(t *testing.T, files map[string]string, env []string, o Options) (*Result, error) {
	t.Helper()
	dir := t.TempDir()
	var list []string
	for _, name := range []string{"compose.yaml", "override.yaml"} {
		if _, ok := files[name]; ok {
			list = append(list, filepath.Join(dir, name))
		}
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l, err := Load(context.Background(), LoadOptions{Files: list, Env: env, Name: "shop"})
	if err != nil {
		return nil, err
	}
	return Convert(l, o)
}

func svc(t *testing.T, r *Result, name string) api.ServiceSpec {
	t.Helper()
	s, ok := r.Stack.Service(name)
	if !ok {
		t.Fatalf("no service %q in %+v", name, r.Stack)
	}
	return s.Spec
}

func TestConvertMapsEveryKey(t *testing.T) {
	r, err := load(t, map[string]string{"compose.yaml": `
services:
  web:
    image: nginx:1.27
    entrypoint: ["/docker-entrypoint.sh"]
    command: nginx -g "daemon off;"
    environment:
      B: "2"
      A: "1"
      UNSET:
    env_file: web.env
    labels: {c: d}
    user: "101:101"
    working_dir: /srv
    hostname: web1
    read_only: true
    stop_grace_period: 1m30s
    stop_signal: SIGQUIT
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost/"]
      interval: 5s
      timeout: 2s
      retries: 4
      start_period: 20s
    ports:
      - "8080:80"
      - "53/udp"
      - target: 443
        published: "8443"
        protocol: tcp
    expose: ["9000", "80"]
    volumes:
      - ./html:/usr/share/nginx/html:ro
      - data:/data
      - type: tmpfs
        target: /cache
        tmpfs: {size: 64m}
    tmpfs: ["/run:size=1m"]
    deploy:
      mode: replicated
      replicas: 3
      labels: {tier: front}
      endpoint_mode: vip
      resources:
        limits: {cpus: "0.5", memory: 128M, pids: 100}
        reservations: {cpus: "0.25", memory: 64M}
      placement:
        constraints: ["node.labels.site==a"]
        max_replicas_per_node: 2
      restart_policy: {condition: on-failure, delay: 2s, max_attempts: 5, window: 1m}
      update_config: {parallelism: 2, delay: 10s, failure_action: rollback, order: start-first}
volumes:
  data:
`, "web.env": "FROM_FILE=yes\n"}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Warnings) != 0 {
		t.Errorf("warnings = %q, want none", r.Warnings)
	}
	s := svc(t, r, "web")
	c := s.Task.Container
	dir := filepath.Dir(c.Mounts[0].Source)
	want := api.ServiceSpec{
		Mode: api.ModeReplicated, Replicas: 3,
		Labels: map[string]string{"tier": "front"},
		Ports: []api.PortConfig{
			{Protocol: api.TCP, TargetPort: 80, PublishedPort: 8080},
			{Protocol: api.UDP, TargetPort: 53},
			{Protocol: api.TCP, TargetPort: 443, PublishedPort: 8443},
			{Protocol: api.TCP, TargetPort: 9000},
		},
		Update: api.UpdateConfig{Strategy: api.StrategyRolling, Parallelism: 2, Delay: api.Duration(10 * time.Second), Order: "start-first", FailureAction: "rollback"},
		Task: api.TaskSpec{
			Container: api.ContainerSpec{
				Image:   "nginx:1.27",
				Command: []string{"/docker-entrypoint.sh"},
				Args:    []string{"nginx", "-g", "daemon off;"},
				Env:     []string{"A=1", "B=2", "FROM_FILE=yes"},
				Labels:  map[string]string{"c": "d"},
				User:    "101:101", Dir: "/srv", Hostname: "web1", ReadOnly: true,
				StopSignal: "SIGQUIT", StopGrace: api.Duration(90 * time.Second),
				Mounts: []api.Mount{
					{Type: api.MountBind, Source: filepath.Join(dir, "html"), Target: "/usr/share/nginx/html", ReadOnly: true},
					{Type: api.MountVolume, Source: "shop_data", Target: "/data"},
					{Type: api.MountTmpfs, Target: "/cache", TmpfsSize: 64 << 20},
					{Type: api.MountTmpfs, Target: "/run", TmpfsSize: 1 << 20},
				},
			},
			Resources: api.ResourceReqs{
				Limits:       api.Resources{NanoCPUs: 5e8, MemoryBytes: 128 << 20, Pids: 100},
				Reservations: api.Resources{NanoCPUs: 25e7, MemoryBytes: 64 << 20},
			},
			Restart:   api.RestartPolicy{Condition: api.RestartOnFailure, Delay: api.Duration(2 * time.Second), MaxDelay: api.Duration(10 * time.Second), MaxAttempts: 5, Window: api.Duration(time.Minute)},
			Placement: api.Placement{Constraints: []string{"node.labels.site==a"}, MaxReplicas: 2},
			Health: &api.HealthCheck{Kind: api.HealthExec, Command: []string{"curl", "-f", "http://localhost/"},
				Interval: api.Duration(5 * time.Second), Timeout: api.Duration(2 * time.Second), Retries: 4, StartPeriod: api.Duration(20 * time.Second)},
		},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("spec:\n got %+v\nwant %+v", s, want)
	}
}

func TestConvertTable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		yaml    string
		env     []string
		strict  bool
		check   func(t *testing.T, r *Result)
		wantErr string // substring; every refusal also names the file
		warn    string // substring of a warning
	}{
		{name: "defaults are warren's and docker's", yaml: "services: {a: {image: x}}", check: func(t *testing.T, r *Result) {
			s := svc(t, r, "a")
			if s.Replicas != 1 || s.Mode != api.ModeReplicated || s.Task.Restart.Condition != api.RestartAny ||
				s.Task.Container.StopGrace != api.Duration(10*time.Second) || s.Task.Health != nil || s.Update.Strategy != api.StrategyRolling {
				t.Errorf("defaults: %+v", s)
			}
		}},
		{name: "global mode", yaml: "services: {a: {image: x, deploy: {mode: global}}}", check: func(t *testing.T, r *Result) {
			if s := svc(t, r, "a"); s.Mode != api.ModeGlobal || s.Replicas != 0 {
				t.Errorf("%+v", s)
			}
		}},
		{name: "scale", yaml: "services: {a: {image: x, scale: 4}}", check: func(t *testing.T, r *Result) {
			if s := svc(t, r, "a"); s.Replicas != 4 {
				t.Errorf("replicas %d", s.Replicas)
			}
		}},
		{name: "jobs refused", yaml: "services: {a: {image: x, deploy: {mode: replicated-job}}}", wantErr: "services.a.deploy.mode"},
		{name: "legacy restart no", yaml: "services: {a: {image: x, restart: \"no\"}}", check: func(t *testing.T, r *Result) {
			if c := svc(t, r, "a").Task.Restart.Condition; c != api.RestartNone {
				t.Errorf("%s", c)
			}
		}},
		{name: "legacy restart on-failure:3", yaml: "services: {a: {image: x, restart: \"on-failure:3\"}}", check: func(t *testing.T, r *Result) {
			if rp := svc(t, r, "a").Task.Restart; rp.Condition != api.RestartOnFailure || rp.MaxAttempts != 3 {
				t.Errorf("%+v", rp)
			}
		}},
		{name: "legacy restart unless-stopped", yaml: "services: {a: {image: x, restart: unless-stopped}}", check: func(t *testing.T, r *Result) {
			if c := svc(t, r, "a").Task.Restart.Condition; c != api.RestartAny {
				t.Errorf("%s", c)
			}
		}},
		{name: "restart_policy wins over restart", yaml: "services: {a: {image: x, restart: always, deploy: {restart_policy: {condition: none}}}}", check: func(t *testing.T, r *Result) {
			if c := svc(t, r, "a").Task.Restart.Condition; c != api.RestartNone {
				t.Errorf("%s", c)
			}
		}},
		{name: "healthcheck shell form, docker timings", yaml: "services: {a: {image: x, healthcheck: {test: pg_isready}}}", check: func(t *testing.T, r *Result) {
			h := svc(t, r, "a").Task.Health
			if h == nil || !reflect.DeepEqual(h.Command, []string{"/bin/sh", "-c", "pg_isready"}) || h.Interval != api.Duration(30*time.Second) || h.Timeout != api.Duration(30*time.Second) || h.Retries != 3 {
				t.Errorf("%+v", h)
			}
		}},
		{name: "healthcheck short interval shortens the default timeout", yaml: "services: {a: {image: x, healthcheck: {test: [CMD, \"true\"], interval: 2s}}}", check: func(t *testing.T, r *Result) {
			if h := svc(t, r, "a").Task.Health; h.Timeout != h.Interval {
				t.Errorf("%+v", h)
			}
		}},
		{name: "healthcheck disable", yaml: "services: {a: {image: x, healthcheck: {disable: true}}}", check: func(t *testing.T, r *Result) {
			if h := svc(t, r, "a").Task.Health; h != nil {
				t.Errorf("%+v", h)
			}
		}},
		{name: "healthcheck NONE", yaml: "services: {a: {image: x, healthcheck: {test: [NONE]}}}", check: func(t *testing.T, r *Result) {
			if h := svc(t, r, "a").Task.Health; h != nil {
				t.Errorf("%+v", h)
			}
		}},
		{name: "depends_on conditions", yaml: `
services:
  db: {image: pg, healthcheck: {test: pg_isready}}
  init: {image: i, restart: "no"}
  app:
    image: a
    depends_on:
      db: {condition: service_healthy}
      init: {condition: service_completed_successfully}
  web: {image: w, depends_on: [app]}`, check: func(t *testing.T, r *Result) {
			app, _ := r.Stack.Service("app")
			want := []stack.Dependency{{Service: "db", Condition: stack.Healthy, Required: true}, {Service: "init", Condition: stack.Completed, Required: true}}
			if !reflect.DeepEqual(app.DependsOn, want) {
				t.Errorf("%+v", app.DependsOn)
			}
			web, _ := r.Stack.Service("web")
			if len(web.DependsOn) != 1 || web.DependsOn[0].Condition != stack.Started {
				t.Errorf("%+v", web.DependsOn)
			}
		}},
		{name: "service_healthy needs a check", yaml: "services: {db: {image: pg}, app: {image: a, depends_on: {db: {condition: service_healthy}}}}", wantErr: "services.app.depends_on.db: condition service_healthy: db has no health check"},
		{name: "service_completed_successfully needs an end", yaml: "services: {init: {image: i}, app: {image: a, depends_on: {init: {condition: service_completed_successfully}}}}", wantErr: "init restarts whenever it stops"},
		{name: "interpolation from the environment and defaults", yaml: "services: {a: {image: \"x:${TAG:-1}\", environment: [\"V=${V}\"]}}", env: []string{"V=from-env"}, check: func(t *testing.T, r *Result) {
			s := svc(t, r, "a")
			if s.Task.Container.Image != "x:1" || !reflect.DeepEqual(s.Task.Container.Env, []string{"V=from-env"}) {
				t.Errorf("%+v", s.Task.Container)
			}
		}},
		{name: "build without image", yaml: "services: {a: {build: .}}", wantErr: "services.a.build: Warren does not build images"},
		{name: "build with image is ignored", yaml: "services: {a: {build: ., image: x}}", warn: "service a: ignoring unsupported options: build"},
		{name: "unsupported options listed once per service", yaml: "services: {a: {image: x, privileged: true, cap_add: [NET_ADMIN], container_name: web1}}",
			warn: "service a: ignoring unsupported options: cap_add, container_name, privileged"},
		{name: "strict refuses unsupported options", strict: true, yaml: "services: {a: {image: x, privileged: true}}", wantErr: "service a: unsupported options (refused with --strict): privileged"},
		{name: "host ip refused rather than widened", yaml: "services: {a: {image: x, ports: [\"127.0.0.1:8080:80\"]}}", wantErr: "services.a.ports[0].host_ip"},
		{name: "port ranges refused", yaml: "services: {a: {image: x, ports: [\"8000-8001:80\"]}}", wantErr: "services.a.ports[0].published"},
		{name: "a port published twice", yaml: "services: {a: {image: x, ports: [\"80:80\"]}, b: {image: y, ports: [\"80:8080\"]}}", wantErr: "services.b.ports[0]: port 80/tcp is already published by services.a.ports[0]"},
		{name: "anonymous volume refused", yaml: "services: {a: {image: x, volumes: [/data]}}", wantErr: "services.a.volumes[0]: anonymous volume"},
		{name: "bad service name", yaml: "services: {Web: {image: x}}", wantErr: "services.Web"},
		{name: "dependency cycle", yaml: "services: {a: {image: x, depends_on: [b]}, b: {image: y, depends_on: [a]}}", wantErr: "cycle"},
		{name: "networks ignored", yaml: "services: {a: {image: x, networks: [n]}}\nnetworks: {n: {}}", warn: "service a: ignoring unsupported options: networks"},
		{name: "dnsrr noted", yaml: "services: {a: {image: x, deploy: {endpoint_mode: dnsrr}}}", warn: "endpoint_mode=dnsrr"},
		{name: "rollback_config noted", yaml: "services: {a: {image: x, deploy: {rollback_config: {parallelism: 1}}}}", warn: "deploy.rollback_config"},
		{name: "devices noted", yaml: "services: {a: {image: x, devices: [\"/dev/fuse:/dev/fuse\"]}}", warn: "devices"},
		{name: "profiles select services", yaml: "services: {a: {image: x}, dbg: {image: y, profiles: [debug]}}", check: func(t *testing.T, r *Result) {
			if len(r.Stack.Services) != 1 {
				t.Errorf("%+v", r.Stack.Services)
			}
		}},
		{name: "extends", yaml: "services: {base: {image: x, environment: [A=1]}, a: {extends: base, environment: [B=2]}}", check: func(t *testing.T, r *Result) {
			if s := svc(t, r, "a"); s.Task.Container.Image != "x" || len(s.Task.Container.Env) != 2 {
				t.Errorf("%+v", s.Task.Container)
			}
		}},
		{name: "not yaml", yaml: "services: [a: {", wantErr: "compose.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := load(t, map[string]string{"compose.yaml": tc.yaml}, tc.env, Options{Strict: tc.strict})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), "compose.yaml") {
					t.Errorf("error does not name the file: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.warn != "" && !strings.Contains(strings.Join(r.Warnings, "\n"), tc.warn) {
				t.Errorf("warnings %q, want %q", r.Warnings, tc.warn)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestConvertIncludeAndDotEnv(t *testing.T) {
	r, err := load(t, map[string]string{
		"compose.yaml":    "include: [db/compose.yaml]\nservices: {web: {image: \"nginx:${TAG}\", depends_on: [db]}}",
		".env":            "TAG=1.27\n",
		"db/compose.yaml": "services: {db: {image: postgres, env_file: db.env}}",
		"db/db.env":       "POSTGRES_DB=shop\n",
	}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s := svc(t, r, "web"); s.Task.Container.Image != "nginx:1.27" {
		t.Errorf(".env not used: %q", s.Task.Container.Image)
	}
	if s := svc(t, r, "db"); !reflect.DeepEqual(s.Task.Container.Env, []string{"POSTGRES_DB=shop"}) {
		t.Errorf("included service's env_file: %v", s.Task.Container.Env)
	}
	if _, err := load(t, map[string]string{"compose.yaml": "services: {a: {image: x, env_file: missing.env}}"}, nil, Options{}); err == nil || !strings.Contains(err.Error(), "missing.env") {
		t.Errorf("missing env_file: %v", err)
	}
}

func TestConvertMergesFilesInOrder(t *testing.T) {
	r, err := load(t, map[string]string{
		"compose.yaml":  "services: {a: {image: x:1, environment: [A=1]}}",
		"override.yaml": "services: {a: {image: x:2, environment: [B=2]}}",
	}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := svc(t, r, "a")
	if s.Task.Container.Image != "x:2" || !reflect.DeepEqual(s.Task.Container.Env, []string{"A=1", "B=2"}) {
		t.Errorf("%+v", s.Task.Container)
	}
}
