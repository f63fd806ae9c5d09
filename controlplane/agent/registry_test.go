package agent

import (
	"crypto/rand"
	"encoding/json"
	"reflect"
	"testing"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/secretbox"
)

func TestPullAuthPicksCredentials(t *testing.T) {
	hub := api.RegistryCredential{Username: "hub", Password: "p1"}
	priv := api.RegistryCredential{Username: "priv", Password: "p2"}
	mirror := api.RegistryCredential{Username: "mirror", Password: "p3"}
	own := api.RegistryCredential{Username: "own", Password: "p4"}
	byID := map[string]registryAuth{
		"l1": {name: "docker.io", cred: hub},
		"l2": {name: "10.1.1.1:5000", cred: priv},
		"l3": {name: "m.lan:5000", cred: mirror},
		"s1": {name: "service.web", cred: own},
	}
	cfg := api.RegistryConfig{Mirrors: map[string][]string{"docker.io": {"https://m.lan:5000"}}}
	task := func(image, auth string) api.Task {
		return api.Task{Spec: api.TaskSpec{Container: api.ContainerSpec{Image: image, RegistryAuth: auth}}}
	}
	for _, tc := range []struct {
		name string
		t    api.Task
		want map[string]api.RegistryCredential
	}{
		{"hub image: its mirror's login and the hub login", task("nginx:latest", ""),
			map[string]api.RegistryCredential{"m.lan:5000": mirror, "docker.io": hub}},
		{"private registry: only its login", task("10.1.1.1:5000/demo:v1", ""),
			map[string]api.RegistryCredential{"10.1.1.1:5000": priv}},
		{"the service's own credential wins over the login", task("10.1.1.1:5000/demo:v1", "s1"),
			map[string]api.RegistryCredential{"10.1.1.1:5000": own}},
		{"no login for the host: none", task("ghcr.io/o/r:1", ""), nil},
		{"a missing service credential: the login still serves", task("10.1.1.1:5000/demo:v1", "gone"),
			map[string]api.RegistryCredential{"10.1.1.1:5000": priv}},
	} {
		got := pullAuth(tc.t, cfg, byID)
		if !reflect.DeepEqual(got.Credentials, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got.Credentials, tc.want)
		}
		if !reflect.DeepEqual(got.Registry, cfg) {
			t.Errorf("%s: registry config not passed on", tc.name)
		}
	}
}

// The executor asks at each pull, so a login changed after a refused pull
// is what the next attempt uses; a task no longer running gets nothing.
func TestPullAuthFollowsAssignments(t *testing.T) {
	key, err := secretbox.NewKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{log: zap.NewNop(), cacheKey: key}
	seal := func(id, name, pw string) api.SecretValue {
		b, _ := json.Marshal(api.RegistryCredential{Username: "u", Password: pw})
		s, err := secretbox.Seal(key, b, secretbox.ValueAAD(string(api.KindRegistryAuth), id), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return api.SecretValue{ID: id, Kind: api.KindRegistryAuth, Name: name, Sealed: s}
	}
	task := api.Task{ID: "t1", DesiredState: api.TaskRunning, Spec: api.TaskSpec{Container: api.ContainerSpec{Image: "reg:5000/x:1"}}}
	as := &api.Assignments{Tasks: []api.Task{task}, Secrets: []api.SecretValue{seal("l1", "reg:5000", "old")}}
	a.setPull(as)
	if got := a.PullAuth("t1"); got == nil || got.Credentials["reg:5000"].Password != "old" {
		t.Fatalf("first assignments: %v", got)
	}
	as.Secrets = []api.SecretValue{seal("l1", "reg:5000", "new")}
	a.setPull(as)
	if got := a.PullAuth("t1"); got.Credentials["reg:5000"].Password != "new" {
		t.Fatalf("a changed login is not what the next pull gets: %v", got)
	}
	task.DesiredState = api.TaskShutdown
	a.setPull(&api.Assignments{Tasks: []api.Task{task}, Secrets: as.Secrets})
	if got := a.PullAuth("t1"); got != nil {
		t.Fatalf("a task shutting down still has credentials: %v", got)
	}
}
