package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/runtime/ociimage"
)

// NewResolver is containerd's docker resolver on the cluster's registry
// settings: the system CA pool plus cfg's CA, plain HTTP only for the hosts
// listed, mirrors before the registry, and creds by the host dialled.
func NewResolver(cfg api.RegistryConfig, creds map[string]api.RegistryCredential) (remotes.Resolver, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if cfg.CAPEM != "" && !pool.AppendCertsFromPEM([]byte(cfg.CAPEM)) {
		return nil, errors.New("registry CA: no PEM certificate in it")
	}
	tr := docker.DefaultHTTPTransport(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	hc := &http.Client{Transport: tr}
	auth := docker.NewDockerAuthorizer(docker.WithAuthClient(hc), docker.WithAuthCreds(func(host string) (string, string, error) {
		c, _ := CredentialFor(creds, host)
		return c.Username, c.Password, nil
	}))
	hosts := func(host string) ([]docker.RegistryHost, error) {
		plan, err := Hosts(cfg, host)
		if err != nil {
			return nil, err
		}
		out := make([]docker.RegistryHost, 0, len(plan))
		for _, h := range plan {
			caps := docker.HostCapabilityPull | docker.HostCapabilityResolve
			if !h.Mirror {
				caps |= docker.HostCapabilityPush
			}
			out = append(out, docker.RegistryHost{Client: hc, Authorizer: auth, Host: h.Host, Scheme: h.Scheme, Path: h.Path, Capabilities: caps})
		}
		return out, nil
	}
	return docker.NewResolver(docker.ResolverOptions{Hosts: hosts}), nil
}

// Resolver resolves image references on the managers; the API server
// calls it through an interface of its own (apiserver.ImageResolver).
type Resolver struct {
	// Timeout bounds one resolution (default 30s): a service write waits
	// for it.
	Timeout time.Duration
}

// Resolve looks ref up once: the digest it names now and the platforms it
// offers (an index's entries, attestations left out, or the single
// manifest's config platform).
func (r *Resolver) Resolve(ctx context.Context, ref string, cfg api.RegistryConfig, creds map[string]api.RegistryCredential) (api.ResolvedImage, error) {
	d := r.Timeout
	if d <= 0 {
		d = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	res, err := NewResolver(cfg, creds)
	if err != nil {
		return api.ResolvedImage{}, err
	}
	// containerd's resolver takes a full reference: "nginx" is
	// docker.io/library/nginx:latest, as the nodes pull it, not a
	// registry host named "nginx".
	name, desc, err := res.Resolve(ctx, ociimage.NormalizeRef(ref))
	if err != nil {
		return api.ResolvedImage{}, Explain(ref, err)
	}
	f, err := res.Fetcher(ctx, name)
	if err != nil {
		return api.ResolvedImage{}, fmt.Errorf("image %s: fetcher: %w", ref, err)
	}
	out := api.ResolvedImage{Digest: desc.Digest.String()}
	switch {
	case images.IsIndexType(desc.MediaType):
		var idx ocispec.Index
		if err := fetchJSON(ctx, f, desc, &idx); err != nil {
			return api.ResolvedImage{}, fmt.Errorf("image %s: index: %w", ref, err)
		}
		for _, m := range idx.Manifests {
			if p := m.Platform; p != nil && p.OS != "unknown" && p.Architecture != "unknown" {
				out.Platforms = append(out.Platforms, api.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant})
			}
		}
	case images.IsManifestType(desc.MediaType):
		var m ocispec.Manifest
		if err := fetchJSON(ctx, f, desc, &m); err != nil {
			return api.ResolvedImage{}, fmt.Errorf("image %s: manifest: %w", ref, err)
		}
		var c ocispec.Image
		if err := fetchJSON(ctx, f, m.Config, &c); err != nil {
			return api.ResolvedImage{}, fmt.Errorf("image %s: config: %w", ref, err)
		}
		if c.OS != "" && c.Architecture != "" {
			out.Platforms = []api.Platform{{OS: c.OS, Architecture: c.Architecture, Variant: c.Variant}}
		}
	}
	return out, nil
}

func fetchJSON(ctx context.Context, f remotes.Fetcher, desc ocispec.Descriptor, v any) error {
	rc, err := f.Fetch(ctx, desc)
	if err != nil {
		return err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 4<<20))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// Errors a pull or resolution ends with, for errors.Is.
var (
	ErrUnauthorized = errors.New("registry refused the credentials (401 unauthorized)")
	ErrNotFound     = errors.New("manifest unknown (404 not found)")
	ErrNoPlatform   = errors.New("no matching platform")
)

// Explain turns what containerd returns for a failed resolve or pull into
// a task error that says what the registry refused.
func Explain(ref string, err error) error {
	if err == nil {
		return nil
	}
	s := err.Error()
	host := RefHost(ref)
	switch {
	case errors.Is(err, docker.ErrInvalidAuthorization) || strings.Contains(s, "401 Unauthorized") || strings.Contains(s, "authorization failed"):
		return fmt.Errorf("image %s: %w by %s: check `warren registry login %s` or --with-registry-auth: %w", ref, ErrUnauthorized, host, host, err)
	case errdefs.IsNotFound(err) || strings.Contains(s, "404 Not Found") || strings.Contains(s, "manifest unknown"):
		return fmt.Errorf("image %s: %w on %s: %w", ref, ErrNotFound, host, err)
	case strings.Contains(s, "no match for platform"):
		return fmt.Errorf("image %s: %w: %w", ref, ErrNoPlatform, err)
	}
	return fmt.Errorf("image %s: pull from %s: %w", ref, host, err)
}

// PinnedRef is the reference a node pulls for an image pinned to digest:
// repository@digest, the tag dropped (containerd names the image by it).
func PinnedRef(image, digest string) string {
	if digest == "" {
		return image
	}
	name := image
	if i := strings.LastIndex(name, "@"); i >= 0 {
		name = name[:i]
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i]
	}
	return name + "@" + digest
}
