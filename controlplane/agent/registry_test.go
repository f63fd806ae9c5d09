package agent

import (
	"reflect"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
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
