package registry

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/warrenhq/warren/controlplane/api"
)

// DockerHub is the registry host of references without one (nginx:latest);
// its API lives at dockerHubAPI.
const (
	DockerHub    = "docker.io"
	dockerHubAPI = "registry-1.docker.io"
)

// Host is one place to fetch a registry's images from, in the order tried.
type Host struct {
	Host   string // host[:port] dialled
	Scheme string // https, or http for insecure hosts and http:// mirrors
	Path   string // API root, /v2 (or <mirror path>/v2)
	// Mirror hosts serve pulls and resolution but never pushes, and get
	// the credentials of their own host, not the upstream's.
	Mirror bool
}

// Hosts plans where images of registry host come from: its mirrors first,
// in the configured order, then the host itself. A mirror URL must be
// http(s)://host[:port][/path]; the host is reached over HTTPS unless it is
// listed as insecure.
func Hosts(cfg api.RegistryConfig, host string) ([]Host, error) {
	if host == "" {
		return nil, fmt.Errorf("registry host: empty")
	}
	var out []Host
	for _, m := range mirrorsOf(cfg, host) {
		h, err := ParseMirror(m)
		if err != nil {
			return nil, fmt.Errorf("mirror of %s: %w", host, err)
		}
		out = append(out, h)
	}
	up := Host{Host: host, Scheme: "https", Path: "/v2"}
	if host == DockerHub {
		up.Host = dockerHubAPI
	}
	if Insecure(cfg, host) {
		up.Scheme = "http"
	}
	return append(out, up), nil
}

// mirrorsOf finds the mirrors configured for host; Docker Hub may be named
// by either of its names.
func mirrorsOf(cfg api.RegistryConfig, host string) []string {
	if m, ok := cfg.Mirrors[host]; ok {
		return m
	}
	if host == DockerHub {
		return cfg.Mirrors[dockerHubAPI]
	}
	return nil
}

// ParseMirror checks a mirror URL and returns the host it names.
func ParseMirror(s string) (Host, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Host{}, fmt.Errorf("mirror %q: %w", s, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return Host{}, fmt.Errorf("mirror %q: want an http:// or https:// URL", s)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return Host{}, fmt.Errorf("mirror %q: want scheme://host[:port][/path] and nothing else", s)
	}
	p := strings.TrimSuffix(u.Path, "/")
	if !strings.HasSuffix(p, "/v2") {
		p += "/v2"
	}
	return Host{Host: u.Host, Scheme: u.Scheme, Path: p, Mirror: true}, nil
}

// Insecure reports whether host is listed as reachable over plain HTTP;
// a listed name without a port covers every port of it.
func Insecure(cfg api.RegistryConfig, host string) bool {
	if slices.Contains(cfg.Insecure, host) {
		return true
	}
	if name, _, err := net.SplitHostPort(host); err == nil {
		return slices.Contains(cfg.Insecure, name)
	}
	return false
}

// CredentialFor picks the credential for a host being dialled (a mirror
// or the registry itself): the one stored for exactly that host, and for
// Docker Hub's API host the one stored for docker.io.
func CredentialFor(creds map[string]api.RegistryCredential, host string) (api.RegistryCredential, bool) {
	if c, ok := creds[host]; ok {
		return c, true
	}
	if host == dockerHubAPI {
		c, ok := creds[DockerHub]
		return c, ok
	}
	return api.RegistryCredential{}, false
}

// RefHost is the registry host of an image reference (api.ImageHost).
func RefHost(ref string) string { return api.ImageHost(ref) }

// ValidateConfig checks what `cluster update` is given before it is
// stored: mirrors must parse, the CA must hold certificates.
func ValidateConfig(cfg api.RegistryConfig) error {
	for host, ms := range cfg.Mirrors {
		if host == "" || strings.Contains(host, "/") {
			return fmt.Errorf("registry mirror: %q is not a registry host (docker.io, ghcr.io, host:port)", host)
		}
		for _, m := range ms {
			if _, err := ParseMirror(m); err != nil {
				return fmt.Errorf("registry mirror of %s: %w", host, err)
			}
		}
	}
	for _, h := range cfg.Insecure {
		if h == "" || strings.Contains(h, "/") {
			return fmt.Errorf("insecure registry: %q is not a host or host:port", h)
		}
	}
	return nil
}
