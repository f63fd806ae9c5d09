package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/spf13/pflag"

	"github.com/warrenhq/warren/controlplane/api"
)

func TestRegistryClusterFlags(t *testing.T) {
	cur := api.RegistryConfig{CAPEM: "old", Insecure: []string{"a:5000"},
		Mirrors: map[string][]string{"docker.io": {"https://m1"}, "ghcr.io": {"https://g"}}}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("new-ca"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want api.RegistryConfig
		err  bool
	}{
		{[]string{"--registry-ca", ca}, api.RegistryConfig{CAPEM: "new-ca", Insecure: cur.Insecure, Mirrors: cur.Mirrors}, false},
		{[]string{"--registry-ca", ""}, api.RegistryConfig{Insecure: cur.Insecure, Mirrors: cur.Mirrors}, false},
		// The flags give a host's whole list, in order; other hosts are kept.
		{[]string{"--registry-mirror", "docker.io=https://x", "--registry-mirror", "docker.io=https://y"},
			api.RegistryConfig{CAPEM: "old", Insecure: cur.Insecure, Mirrors: map[string][]string{"docker.io": {"https://x", "https://y"}, "ghcr.io": {"https://g"}}}, false},
		{[]string{"--registry-mirror", "docker.io="},
			api.RegistryConfig{CAPEM: "old", Insecure: cur.Insecure, Mirrors: map[string][]string{"ghcr.io": {"https://g"}}}, false},
		{[]string{"--insecure-registry", "b", "--insecure-registry", "c:1"}, api.RegistryConfig{CAPEM: "old", Insecure: []string{"b", "c:1"}, Mirrors: cur.Mirrors}, false},
		{[]string{"--insecure-registry", ""}, api.RegistryConfig{CAPEM: "old", Mirrors: cur.Mirrors}, false},
		{[]string{"--registry-mirror", "https://x"}, api.RegistryConfig{}, true},
		{[]string{"--registry-ca", "/nonexistent/ca.pem"}, api.RegistryConfig{}, true},
	} {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		var f registryClusterFlags
		addRegistryClusterFlags(fs, &f)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		got, err := f.apply(fs, cur)
		if (err != nil) != tc.err {
			t.Fatalf("%v: err %v, want error %v", tc.args, err, tc.err)
		}
		if !tc.err && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v:\n got %+v\nwant %+v", tc.args, got, tc.want)
		}
	}
}

func TestOwnCredential(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	t.Setenv("WARREN_REGISTRY_AUTH", "")
	auth := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	cfg := `{"auths":{"https://index.docker.io/v1/":{"auth":"` + auth("hub:pw1") + `"},"reg.lan:5000":{"auth":"` + auth("me:pw2") + `"}}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]api.RegistryCredential{
		"docker.io":    {Username: "hub", Password: "pw1"},
		"reg.lan:5000": {Username: "me", Password: "pw2"},
	} {
		got, err := ownCredential(host)
		if err != nil || got != want {
			t.Errorf("%s: %v, %v; want %v", host, got, err, want)
		}
	}
	if _, err := ownCredential("ghcr.io"); err == nil {
		t.Error("a host without an entry gave a credential")
	}
	t.Setenv("WARREN_REGISTRY_AUTH", "env:pw3")
	if got, err := ownCredential("ghcr.io"); err != nil || got.Password != "pw3" {
		t.Errorf("$WARREN_REGISTRY_AUTH: %v, %v", got, err)
	}
	t.Setenv("WARREN_REGISTRY_AUTH", "nocolon")
	if _, err := ownCredential("ghcr.io"); err == nil {
		t.Error("$WARREN_REGISTRY_AUTH without user:password accepted")
	}
}
