package api

import (
	"fmt"
	"net/url"
	"strings"
)

// Registries. Nodes pull images through containerd from OCI registries;
// the cluster says how (RegistryConfig: a CA, plain-HTTP hosts, mirrors) and
// with which credentials. Credentials are secrets of kind
// KindRegistryAuth: a login (`warren registry login HOST`) is named by its
// host and serves every service pulling from there; a service created with
// --with-registry-auth gets one of its own, named after the service. Both
// are sealed like secrets and reach only the nodes that pull for a task
// that needs them.

// KindRegistryAuth is the secret kind of registry credentials. Their value
// is a JSON RegistryCredential; inspect shows neither it nor its size.
const KindRegistryAuth SecretKind = "registry-auth"

// Valid reports whether k is a kind the store keeps.
func (k SecretKind) Valid() bool {
	return k == KindSecret || k == KindConfig || k == KindRegistryAuth
}

// RegistryConfig is the cluster's registry settings (`warren cluster
// update --registry-ca/--registry-mirror/--insecure-registry`); every node
// gets it with its assignments.
type RegistryConfig struct {
	// CAPEM are extra CA certificates trusted for every registry, on top
	// of the system pool.
	CAPEM string `json:"ca_pem,omitempty"`
	// Insecure hosts (host or host:port) are reached over plain HTTP.
	Insecure []string `json:"insecure,omitempty"`
	// Mirrors maps a registry host (docker.io) to mirror base URLs
	// (https://mirror:5000), tried in order before the host itself.
	Mirrors map[string][]string `json:"mirrors,omitempty"`
}

// IsZero reports whether nothing is configured.
func (c RegistryConfig) IsZero() bool {
	return c.CAPEM == "" && len(c.Insecure) == 0 && len(c.Mirrors) == 0
}

// RegistryCredential is a username and password (or token) for a registry.
// Its String and GoString never show the password, so a credential printed
// or logged by accident does not leak it.
type RegistryCredential struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (c RegistryCredential) String() string {
	return fmt.Sprintf("{user %q, password redacted}", c.Username)
}

// GoString redacts like String.
func (c RegistryCredential) GoString() string { return c.String() }

// PullAuth is what a node's executor gets to pull a task's image: the
// cluster settings and the credentials for the task, by registry host. The
// agent keeps it in memory only and the executor asks for it at each pull
// (agent.PullAuth), so it is in no cache, status or log.
type PullAuth struct {
	Registry    RegistryConfig                `json:"-"`
	Credentials map[string]RegistryCredential `json:"-"`
}

func (p *PullAuth) String() string {
	if p == nil {
		return "<nil>"
	}
	hosts := make([]string, 0, len(p.Credentials))
	for h := range p.Credentials {
		hosts = append(hosts, h)
	}
	return "{credentials for " + strings.Join(hosts, ",") + "}"
}

// GoString redacts like String.
func (p *PullAuth) GoString() string { return p.String() }

// Platform is an OS/architecture/variant, as in OCI image indexes.
type Platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// RegistryAuthName is the name of the credential a service created with
// --with-registry-auth keeps for itself; logins are named by host, which
// never starts with "service.".
func RegistryAuthName(service string) string { return "service." + service }

// ImageHost is the registry host of an image reference (docker.io when it
// names none), as `docker pull` reads it: the first path element is a
// host when it has a dot or a port, or is localhost.
func ImageHost(ref string) string {
	first, _, ok := strings.Cut(ref, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return first
	}
	return "docker.io"
}

// PullHosts are the hosts a node may dial to pull image: its registry's
// mirrors, then the registry. Credentials are looked up by these names.
func (c RegistryConfig) PullHosts(image string) []string {
	host := ImageHost(image)
	var out []string
	ms, ok := c.Mirrors[host]
	if !ok && host == "docker.io" {
		ms = c.Mirrors["registry-1.docker.io"]
	}
	for _, m := range ms {
		if u, err := url.Parse(m); err == nil && u.Host != "" {
			out = append(out, u.Host)
		}
	}
	return append(out, host)
}

// ResolvedImage is what an image tag pointed at when the manager looked.
type ResolvedImage struct {
	Digest    string     `json:"digest"`
	Platforms []Platform `json:"platforms,omitempty"`
}
