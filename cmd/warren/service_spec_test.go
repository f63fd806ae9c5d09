package main

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/warrenhq/warren/controlplane/api"
)

// parseCreate runs `service create` flag parsing without a manager.
func parseCreate(t *testing.T, args ...string) (api.ServiceSpec, error) {
	t.Helper()
	f := &serviceFlags{}
	fs := pflag.NewFlagSet("create", pflag.ContinueOnError)
	addServiceFlags(fs, f)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return specFromFlags("web", f, flagSet(fs))
}

func TestSpecFromFlagsCarriesEveryField(t *testing.T) {
	spec, err := parseCreate(t,
		"--image", "warren/demo:v1", "--replicas", "3", "--publish", "8080:80", "--port", "53/udp",
		"-e", "A=1", "--env", "B=two=2", "--label", "team=edge", "--container-label", "c=d",
		"--constraint", "node.labels.site==a", "--replicas-max-per-node", "2",
		"--entrypoint", "/app --serve", "--args", "x", "--args", "y", "--workdir", "/srv", "--user", "1000:1000",
		"--hostname", "h", "--mount", "type=bind,source=/data,target=/data,readonly", "--mount", "type=tmpfs,target=/t,tmpfs-size=64M",
		"--read-only", "--reserve-cpu", "0.25", "--reserve-memory", "64M", "--limit-cpu", "0.5", "--limit-memory", "128M",
		"--limit-pids", "100", "--health-http", "/healthz", "--health-interval", "2s", "--health-timeout", "1s",
		"--health-retries", "4", "--health-start-period", "3s", "--restart-condition", "on-failure", "--restart-delay", "1s",
		"--restart-max-attempts", "5", "--restart-window", "1m", "--stop-signal", "SIGINT", "--stop-grace-period", "7s",
		"--update-strategy", "canary", "--update-parallelism", "2", "--update-delay", "5s", "--update-order", "start-first",
		"--update-failure-action", "rollback", "--canary-weight", "20", "--version", "v1",
		"--canary-max-error-rate", "1.5%", "--canary-min-connections", "300",
	)
	if err != nil {
		t.Fatal(err)
	}
	want := api.ServiceSpec{
		Name: "web", Mode: api.ModeReplicated, Replicas: 3, Version: "v1",
		Labels: map[string]string{"team": "edge"},
		Ports:  []api.PortConfig{{Protocol: api.TCP, PublishedPort: 8080, TargetPort: 80}, {Protocol: api.UDP, TargetPort: 53}},
		Update: api.UpdateConfig{Strategy: api.StrategyCanary, Parallelism: 2, Delay: api.Duration(5 * time.Second), Order: "start-first", FailureAction: "rollback", CanaryWeight: 20,
			CanaryMaxErrorRate: 0.015, CanaryMinConnections: 300},
		Task: api.TaskSpec{
			Container: api.ContainerSpec{
				Image: "warren/demo:v1", Command: []string{"/app", "--serve"}, Args: []string{"x", "y"},
				Env: []string{"A=1", "B=two=2"}, Dir: "/srv", User: "1000:1000", Hostname: "h",
				Labels: map[string]string{"c": "d"}, ReadOnly: true, StopSignal: "SIGINT", StopGrace: api.Duration(7 * time.Second),
				Mounts: []api.Mount{
					{Type: api.MountBind, Source: "/data", Target: "/data", ReadOnly: true},
					{Type: api.MountTmpfs, Target: "/t", TmpfsSize: 64 << 20},
				},
			},
			Resources: api.ResourceReqs{
				Limits:       api.Resources{NanoCPUs: 5e8, MemoryBytes: 128 << 20, Pids: 100},
				Reservations: api.Resources{NanoCPUs: 25e7, MemoryBytes: 64 << 20},
			},
			Restart:   api.RestartPolicy{Condition: api.RestartOnFailure, Delay: api.Duration(time.Second), MaxDelay: api.Duration(10 * time.Second), MaxAttempts: 5, Window: api.Duration(time.Minute)},
			Placement: api.Placement{Constraints: []string{"node.labels.site==a"}, MaxReplicas: 2},
			Health: &api.HealthCheck{Kind: api.HealthHTTP, Path: "/healthz", Interval: api.Duration(2 * time.Second),
				Timeout: api.Duration(time.Second), Retries: 4, StartPeriod: api.Duration(3 * time.Second)},
		},
	}
	if !reflect.DeepEqual(spec, want) {
		t.Errorf("spec mismatch\n got: %+v\nwant: %+v", spec, want)
	}
}

func TestSpecFromFlagsErrorsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--image", "x", "--port", "8080:0"}, "--publish"},
		{[]string{"--image", "x", "--port", "1:2:3"}, "--publish"},
		{[]string{"--image", "x", "--port", "80/sctp"}, "protocol"},
		{[]string{"--image", "x", "--env", "NOEQUALS"}, "--env"},
		{[]string{"--image", "x", "--mode", "daemon"}, "--mode"},
		{[]string{"--image", "x", "--mode", "global", "--replicas", "2"}, "--replicas"},
		{[]string{"--image", "x", "--limit-memory", "lots"}, "--limit-memory"},
		{[]string{"--image", "x", "--limit-cpu", "-1"}, "--limit-cpu"},
		{[]string{"--image", "x", "--health-cmd", "true", "--health-tcp", "80"}, "choose one"},
		{[]string{"--image", "x", "--health-interval", "1s"}, "need a check"},
		{[]string{"--image", "x", "--health-http", "healthz"}, "--health-http"},
		{[]string{"--image", "x", "--restart-condition", "always"}, "--restart-condition"},
		{[]string{"--image", "x", "--update-order", "random"}, "--update-order"},
		{[]string{"--image", "x", "--canary-weight", "150"}, "--canary-weight"},
		{[]string{"--image", "x", "--canary-max-error-rate", "100%"}, "--canary-max-error-rate"},
		{[]string{"--image", "x", "--canary-max-error-rate", "-1%"}, "--canary-max-error-rate"},
		{[]string{"--image", "x", "--canary-max-error-rate", "some"}, "--canary-max-error-rate"},
		{[]string{"--image", "x", "--mount", "./relative:/x"}, "absolute"},
		{[]string{"--image", "x", "--mount", "type=nfs,target=/x"}, "type must be"},
		{[]string{"--image", "x", "--label", "=v"}, "--label"},
	} {
		_, err := parseCreate(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want mention of %q", tc.args, err, tc.want)
		}
	}
}

func TestUpdateKeepsUnsetFields(t *testing.T) {
	base, err := parseCreate(t, "--image", "a:1", "--replicas", "3", "--port", "8080:80", "--env", "A=1")
	if err != nil {
		t.Fatal(err)
	}
	f := &serviceFlags{}
	fs := pflag.NewFlagSet("update", pflag.ContinueOnError)
	addServiceFlags(fs, f)
	if err := fs.Parse([]string{"--image", "a:2"}); err != nil {
		t.Fatal(err)
	}
	got, err := applyFlags(base, f, flagSet(fs))
	if err != nil {
		t.Fatal(err)
	}
	want := base
	want.Task.Container.Image = "a:2"
	if !reflect.DeepEqual(got, want) {
		t.Errorf("update changed more than the image:\n got %+v\nwant %+v", got, want)
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"100": 100, "64k": 64 << 10, "512M": 512 << 20, "1G": 1 << 30, "1GiB": 1 << 30, "1.5g": 3 << 29} {
		got, err := parseBytes("--x", in)
		if err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestArchiveNames(t *testing.T) {
	var buf bytes.Buffer
	if err := packForTest(&buf, "warren/demo:v1"); err != nil {
		t.Fatal(err)
	}
	names, err := archiveNames(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "docker.io/warren/demo:v1" {
		t.Errorf("names = %v", names)
	}
	if _, err := archiveNames(strings.NewReader("not a tar")); err == nil {
		t.Error("a non-archive was accepted")
	}
}

func packForTest(w *bytes.Buffer, ref string) error {
	return ociimagePack(w, ref, []byte("#!/bin/true\n"))
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{"1%": 0.01, "0.5%": 0.005, "0.02": 0.02, "0": 0, "0%": 0} {
		got, err := parseRate(in)
		if err != nil || got != want {
			t.Errorf("parseRate(%q) = %g, %v; want %g", in, got, err, want)
		}
	}
}
