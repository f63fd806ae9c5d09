package registry

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"

	"github.com/warrenhq/warren/controlplane/api"
)

func TestHosts(t *testing.T) {
	cfg := api.RegistryConfig{
		Insecure: []string{"10.0.0.9:5000", "plain.lan"},
		Mirrors: map[string][]string{
			"docker.io":     {"https://m1:5000", "http://m2.lan/cache/"},
			"ghcr.io":       {"https://ghcr-mirror/v2"},
			"10.0.0.9:5000": {"https://edge:443/"},
		},
	}
	for _, tc := range []struct {
		host string
		want []Host
	}{
		{"docker.io", []Host{
			{Host: "m1:5000", Scheme: "https", Path: "/v2", Mirror: true},
			{Host: "m2.lan", Scheme: "http", Path: "/cache/v2", Mirror: true},
			{Host: "registry-1.docker.io", Scheme: "https", Path: "/v2"},
		}},
		{"ghcr.io", []Host{
			{Host: "ghcr-mirror", Scheme: "https", Path: "/v2", Mirror: true},
			{Host: "ghcr.io", Scheme: "https", Path: "/v2"},
		}},
		{"10.0.0.9:5000", []Host{
			{Host: "edge:443", Scheme: "https", Path: "/v2", Mirror: true},
			{Host: "10.0.0.9:5000", Scheme: "http", Path: "/v2"},
		}},
		{"plain.lan:8080", []Host{{Host: "plain.lan:8080", Scheme: "http", Path: "/v2"}}},
		{"10.0.0.9:5001", []Host{{Host: "10.0.0.9:5001", Scheme: "https", Path: "/v2"}}},
		{"quay.io", []Host{{Host: "quay.io", Scheme: "https", Path: "/v2"}}},
	} {
		got, err := Hosts(cfg, tc.host)
		if err != nil {
			t.Fatalf("%s: %v", tc.host, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Hosts(%s)\n got %+v\nwant %+v", tc.host, got, tc.want)
		}
	}
	// Docker Hub mirrors may be keyed by its API host too.
	got, _ := Hosts(api.RegistryConfig{Mirrors: map[string][]string{"registry-1.docker.io": {"https://m"}}}, "docker.io")
	if len(got) != 2 || got[0].Host != "m" {
		t.Errorf("mirror keyed registry-1.docker.io: %+v", got)
	}
}

func TestParseMirrorRefuses(t *testing.T) {
	for _, s := range []string{"m:5000", "ftp://m", "https://", "https://u:p@m", "https://m?x=1", "https://m#f"} {
		if _, err := ParseMirror(s); err == nil {
			t.Errorf("ParseMirror(%q) accepted it", s)
		}
	}
	if err := ValidateConfig(api.RegistryConfig{Mirrors: map[string][]string{"docker.io": {"m:5000"}}}); err == nil {
		t.Error("ValidateConfig accepted a mirror without scheme")
	}
	if err := ValidateConfig(api.RegistryConfig{Mirrors: map[string][]string{"https://docker.io": {"https://m"}}}); err == nil {
		t.Error("ValidateConfig accepted a URL as the mirrored host")
	}
	if err := ValidateConfig(api.RegistryConfig{Insecure: []string{"http://x"}}); err == nil {
		t.Error("ValidateConfig accepted a URL as an insecure host")
	}
}

func TestCredentialFor(t *testing.T) {
	creds := map[string]api.RegistryCredential{
		"docker.io":      {Username: "hub"},
		"10.1.1.1:5000":  {Username: "priv"},
		"mirror.lan:443": {Username: "mirror"},
	}
	for _, tc := range []struct {
		host, want string
		ok         bool
	}{
		{"registry-1.docker.io", "hub", true},
		{"docker.io", "hub", true},
		{"10.1.1.1:5000", "priv", true},
		{"10.1.1.1", "", false}, // another port is another registry
		{"mirror.lan:443", "mirror", true},
		{"ghcr.io", "", false},
	} {
		c, ok := CredentialFor(creds, tc.host)
		if ok != tc.ok || c.Username != tc.want {
			t.Errorf("CredentialFor(%s) = %q,%v want %q,%v", tc.host, c.Username, ok, tc.want, tc.ok)
		}
	}
}

func TestRefHost(t *testing.T) {
	for ref, want := range map[string]string{
		"nginx":                          "docker.io",
		"nginx:latest":                   "docker.io",
		"library/nginx:1":                "docker.io",
		"warren/demo:v1":                 "docker.io",
		"ghcr.io/o/r:tag":                "ghcr.io",
		"10.1.1.1:5000/demo:v1":          "10.1.1.1:5000",
		"localhost/x":                    "localhost",
		"docker.io/library/nginx@sha256": "docker.io",
	} {
		if got := RefHost(ref); got != want {
			t.Errorf("RefHost(%q) = %q, want %q", ref, got, want)
		}
	}
}

func TestCredentialRedacted(t *testing.T) {
	c := api.RegistryCredential{Username: "u", Password: "hunter2"}
	p := &api.PullAuth{Credentials: map[string]api.RegistryCredential{"h": c}}
	for _, s := range []string{c.String(), p.String(), fmtV(c), fmtV(p), fmtV(*p)} {
		if contains(s, "hunter2") {
			t.Errorf("password printed: %s", s)
		}
	}
}

func TestPinnedRef(t *testing.T) {
	d := "sha256:" + strings.Repeat("a", 64)
	for in, want := range map[string]string{
		"10.1.1.1:5000/demo:v1":     "10.1.1.1:5000/demo@" + d,
		"10.1.1.1:5000/demo":        "10.1.1.1:5000/demo@" + d,
		"nginx:latest":              "nginx@" + d,
		"ghcr.io/o/r:t@sha256:bbbb": "ghcr.io/o/r@" + d,
	} {
		if got := PinnedRef(in, d); got != want {
			t.Errorf("PinnedRef(%q) = %q, want %q", in, got, want)
		}
	}
	if got := PinnedRef("nginx:1", ""); got != "nginx:1" {
		t.Errorf("PinnedRef without digest = %q", got)
	}
}

func TestExplain(t *testing.T) {
	ref := "10.1.1.1:5000/demo:v1"
	for _, tc := range []struct {
		err  error
		want error
		text string
	}{
		{fmt.Errorf("pull access denied: %w", docker.ErrInvalidAuthorization), ErrUnauthorized, "warren registry login 10.1.1.1:5000"},
		{errors.New("unexpected status from HEAD request: 401 Unauthorized"), ErrUnauthorized, "401"},
		{fmt.Errorf("%s: %w", ref, errdefs.ErrNotFound), ErrNotFound, "manifest unknown"},
		{errors.New("no match for platform in manifest: not found"), ErrNoPlatform, "no matching platform"},
	} {
		got := Explain(ref, tc.err)
		if !errors.Is(got, tc.want) || !strings.Contains(got.Error(), tc.text) || !strings.Contains(got.Error(), ref) {
			t.Errorf("Explain(%v) = %v, want %v with %q", tc.err, got, tc.want, tc.text)
		}
	}
	other := Explain(ref, errors.New("connection refused"))
	if errors.Is(other, ErrUnauthorized) || errors.Is(other, ErrNotFound) || !strings.Contains(other.Error(), "connection refused") {
		t.Errorf("Explain(connection refused) = %v", other)
	}
}
