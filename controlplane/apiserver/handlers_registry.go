package apiserver

import (
	"cmp"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/distribution/reference"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/secretbox"
	"github.com/warrenhq/warren/controlplane/store"
)

// ImageResolver looks an image tag up in its registry once, so a service
// is pinned to what the tag named when it was written. runtime/registry
// implements it; cmd/warren wires it in (the control plane does not talk
// to registries itself).
type ImageResolver interface {
	Resolve(ctx context.Context, ref string, cfg api.RegistryConfig, creds map[string]api.RegistryCredential) (api.ResolvedImage, error)
}

// registryRoutes serve the cluster's registry settings and logins. A login
// is a secret of kind registry-auth named by its host; no route returns
// its value.
func (s *Server) registryRoutes() []Route {
	return []Route{
		{http.MethodGet, "/v1/cluster/registry", readers, Read, s.registryConfig},
		{http.MethodPost, "/v1/cluster/registry", admins, Write, s.setRegistryConfig},
		{http.MethodPost, "/v1/registry/logins", admins, Write, s.registryLogin},
		{http.MethodGet, "/v1/registry/logins", readers, Read, s.registryLogins},
		{http.MethodDelete, "/v1/registry/logins/{host}", admins, Write, s.registryLogout},
	}
}

func (s *Server) registryConfig(w http.ResponseWriter, r *http.Request, _ Identity) error {
	v := s.b.View()
	c, err := s.cluster(v)
	if err != nil {
		return err
	}
	writeIndex(w, v.Index())
	writeJSON(w, http.StatusOK, c.Registry)
	return nil
}

// setRegistryConfig replaces the cluster's registry settings; every node
// gets them with its next assignments.
func (s *Server) setRegistryConfig(w http.ResponseWriter, r *http.Request, _ Identity) error {
	var cfg api.RegistryConfig
	if err := decodeBody(r, &cfg); err != nil {
		return err
	}
	if err := validRegistryConfig(cfg); err != nil {
		return err
	}
	idx, err := s.applyToCluster(r.Context(), func(c api.Cluster) (*store.Batch, error) {
		c.Registry = cfg
		return &store.Batch{Cluster: &c}, nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, client.WriteResult{Index: idx})
	return nil
}

func validRegistryConfig(cfg api.RegistryConfig) error {
	if cfg.CAPEM != "" {
		rest, n := []byte(cfg.CAPEM), 0
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if b.Type != "CERTIFICATE" {
				continue
			}
			if _, err := x509.ParseCertificate(b.Bytes); err != nil {
				return errorf(http.StatusBadRequest, "registry CA: certificate %d: %v", n+1, err)
			}
			n++
		}
		if n == 0 {
			return errorf(http.StatusBadRequest, "registry CA: no PEM certificate in it")
		}
	}
	for host, ms := range cfg.Mirrors {
		if err := validRegistryHost(host); err != nil {
			return errorf(http.StatusBadRequest, "registry mirror: %v", err)
		}
		for _, m := range ms {
			u, err := url.Parse(m)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
				return errorf(http.StatusBadRequest, "registry mirror of %s: %q is not an http(s)://host[:port][/path] URL", host, m)
			}
		}
	}
	for _, h := range cfg.Insecure {
		if err := validRegistryHost(h); err != nil {
			return errorf(http.StatusBadRequest, "insecure registry: %v", err)
		}
	}
	return nil
}

// validRegistryHost accepts host or host:port, as image references name
// registries.
func validRegistryHost(h string) error {
	if h == "" || len(h) > 253 {
		return fmt.Errorf("%q is not a registry host (docker.io, ghcr.io, host:port)", h)
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == ':' || c == '[' || c == ']') {
			return fmt.Errorf("%q is not a registry host (docker.io, ghcr.io, host:port): %q is not allowed", h, c)
		}
	}
	return nil
}

// registryLogin stores (or replaces) the credential of a registry host.
func (s *Server) registryLogin(w http.ResponseWriter, r *http.Request, _ Identity) error {
	var req client.RegistryLoginRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := validRegistryHost(req.Host); err != nil {
		return errorf(http.StatusBadRequest, "registry login: %v", err)
	}
	if req.Username == "" || req.Password == "" {
		return errorf(http.StatusBadRequest, "registry login %s: username and password must not be empty", req.Host)
	}
	id, idx, err := s.putRegistryAuth(r.Context(), req.Host, api.RegistryCredential{Username: req.Username, Password: req.Password})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, client.WriteResult{Index: idx, ID: id})
	return nil
}

// putRegistryAuth seals cred as the registry-auth secret called name,
// creating it or replacing its value.
func (s *Server) putRegistryAuth(ctx context.Context, name string, cred api.RegistryCredential) (string, uint64, error) {
	data, err := json.Marshal(cred)
	if err != nil {
		return "", 0, err
	}
	defer clear(data)
	v := s.b.View()
	obj, ok := v.SecretByName(api.KindRegistryAuth, name)
	expect := obj.Meta.Version
	if !ok {
		id, err := api.NewID(s.cfg.Rand)
		if err != nil {
			return "", 0, err
		}
		obj = api.Secret{ID: id, Kind: api.KindRegistryAuth, Spec: api.SecretSpec{Name: name}}
		expect = 0
	}
	b := &store.Batch{Expect: []store.Expectation{{Kind: string(api.KindRegistryAuth), ID: obj.ID, Version: expect}}}
	if err := s.sealInto(v, &obj, data, b); err != nil {
		return "", 0, err
	}
	b.Secrets = &store.SecretChanges{Put: []api.Secret{obj}}
	idx, err := s.apply(ctx, b)
	if err != nil {
		return "", 0, err
	}
	return obj.ID, idx, nil
}

// registryLogins lists the hosts with a login; never a username or
// password.
func (s *Server) registryLogins(w http.ResponseWriter, r *http.Request, _ Identity) error {
	v := s.b.View()
	out := []client.RegistryLoginInfo{}
	for _, x := range v.Secrets(api.KindRegistryAuth) {
		if strings.HasPrefix(x.Spec.Name, api.RegistryAuthName("")) {
			continue // a service's own credential, not a login
		}
		out = append(out, client.RegistryLoginInfo{Host: x.Spec.Name, ID: x.ID, Meta: x.Meta})
	}
	slices.SortFunc(out, func(a, b client.RegistryLoginInfo) int { return cmp.Compare(a.Host, b.Host) })
	writeIndex(w, v.Index())
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) registryLogout(w http.ResponseWriter, r *http.Request, _ Identity) error {
	v := s.b.View()
	host := r.PathValue("host")
	x, ok := v.SecretByName(api.KindRegistryAuth, host)
	if !ok || strings.HasPrefix(host, api.RegistryAuthName("")) {
		return errorf(http.StatusNotFound, "registry login %q not found", host)
	}
	idx, err := s.apply(r.Context(), &store.Batch{
		Expect:  []store.Expectation{{Kind: string(api.KindRegistryAuth), ID: x.ID, Version: x.Meta.Version}},
		Secrets: &store.SecretChanges{Delete: []store.SecretID{{Kind: api.KindRegistryAuth, ID: x.ID}}},
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, client.WriteResult{Index: idx, ID: x.ID})
	return nil
}

// registryAuthIDs are the registry credentials a task's node needs: the
// service's own, and the logins of every host it may pull the image from
// (mirrors, then the registry).
func registryAuthIDs(v *store.View, t api.Task) []string {
	var out []string
	if id := t.Spec.Container.RegistryAuth; id != "" {
		out = append(out, id)
	}
	var cfg api.RegistryConfig
	if c := v.Cluster(); c != nil {
		cfg = c.Registry
	}
	for _, h := range cfg.PullHosts(t.Spec.Container.Image) {
		if x, ok := v.SecretByName(api.KindRegistryAuth, h); ok {
			out = append(out, x.ID)
		}
	}
	return out
}

// HeaderRegistryAuth carries the CLI's own credential for the image's
// registry (--with-registry-auth), as Docker's X-Registry-Auth does:
// base64 of a JSON RegistryCredential. A header, not the spec, so the
// value is never part of what is stored, shown or audited.
const HeaderRegistryAuth = "X-Registry-Auth"

// prepareImage settles a service spec's image before it is written: the
// service's own credential (from HeaderRegistryAuth) and the digest its
// tag names now. prev is the spec being replaced (nil at create). A tag
// that cannot be resolved is not an error, as in Swarm: the service is
// written unpinned and the reason is returned as a warning.
func (s *Server) prepareImage(r *http.Request, spec *api.ServiceSpec, prev *api.ServiceSpec) (warnings []string, err error) {
	c := &spec.Task.Container
	if prev != nil && c.Image != prev.Task.Container.Image && c.ImageDigest == prev.Task.Container.ImageDigest {
		c.ImageDigest, c.ImagePlatforms = "", nil // the old pin is of the old image
	}
	if h := r.Header.Get(HeaderRegistryAuth); h != "" {
		cred, err := decodeRegistryAuth(h)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "service %q: %s header: %v", spec.Name, HeaderRegistryAuth, err)
		}
		id, _, err := s.putRegistryAuth(r.Context(), api.RegistryAuthName(spec.Name), cred)
		if err != nil {
			return nil, err
		}
		c.RegistryAuth = id
	}
	v := s.b.View()
	if id := c.RegistryAuth; id != "" {
		if x, ok := v.Secret(api.KindRegistryAuth, id); !ok || x.Spec.Name != api.RegistryAuthName(spec.Name) {
			return nil, errorf(http.StatusBadRequest, "service %q: registry_auth %q is not this service's credential (use --with-registry-auth)", spec.Name, id)
		}
	}
	ref, err := reference.ParseNormalizedNamed(c.Image)
	if err != nil {
		return nil, nil // checkSpec says what is wrong with it
	}
	if d, ok := ref.(reference.Digested); ok {
		c.ImageDigest = d.Digest().String()
	}
	if d := c.ImageDigest; d != "" && !validDigest(d) {
		return nil, errorf(http.StatusBadRequest, "service %q: image_digest %q is not sha256:<64 hex digits>", spec.Name, d)
	}
	if img, ok := v.Image(imageStoreName(c.Image)); ok && c.ImageDigest == "" {
		// An archive loaded into the cluster has no registry to ask; its
		// recorded platforms place it as an index's would (images.md).
		c.ImagePlatforms = slices.Clone(img.Platforms)
		return nil, nil
	}
	switch {
	case s.cfg.Images == nil, r.URL.Query().Get("resolve_image") == "never":
		return nil, nil
	case c.ImageDigest != "":
		return nil, nil // given by the client, or kept from the spec being updated
	}
	if _, ok := v.Image(imageStoreName(c.Image)); ok {
		return nil, nil // an archive loaded into the cluster: no registry to ask
	}
	cfg, creds, err := s.pullCredentials(v, *c)
	if err != nil {
		return nil, err
	}
	res, err := s.cfg.Images.Resolve(r.Context(), c.Image, cfg, creds)
	for k := range creds {
		delete(creds, k)
	}
	if err != nil {
		return []string{fmt.Sprintf("image %s could not be resolved to a digest, so nodes may run different versions of it: %v", c.Image, err)}, nil
	}
	c.ImageDigest, c.ImagePlatforms = res.Digest, res.Platforms
	return nil, nil
}

// pullCredentials opens the credentials a manager uses to resolve an
// image, by host, exactly as a node would get them.
func (s *Server) pullCredentials(v *store.View, c api.ContainerSpec) (api.RegistryConfig, map[string]api.RegistryCredential, error) {
	var cfg api.RegistryConfig
	if cl := v.Cluster(); cl != nil {
		cfg = cl.Registry
	}
	ids := registryAuthIDs(v, api.Task{Spec: api.TaskSpec{Container: c}})
	if len(ids) == 0 {
		return cfg, nil, nil
	}
	dek, _, err := s.dataKey(v)
	if err != nil {
		return cfg, nil, err
	}
	creds := map[string]api.RegistryCredential{}
	host := api.ImageHost(c.Image)
	for _, id := range ids {
		x, ok := v.Secret(api.KindRegistryAuth, id)
		if !ok {
			continue
		}
		cred, err := openRegistryAuth(dek, x)
		if err != nil {
			return cfg, nil, err
		}
		name := x.Spec.Name
		if id == c.RegistryAuth {
			name = host
		} else if _, own := creds[name]; own {
			continue // the service's own credential wins over a login
		}
		creds[name] = cred
	}
	return cfg, creds, nil
}

func openRegistryAuth(dek []byte, x api.Secret) (api.RegistryCredential, error) {
	pt, err := secretbox.Open(dek, x.Sealed, secretbox.ValueAAD(string(x.Kind), x.ID))
	if err != nil {
		return api.RegistryCredential{}, fmt.Errorf("open registry credential %q: %w", x.Spec.Name, err)
	}
	defer clear(pt)
	var c api.RegistryCredential
	if err := json.Unmarshal(pt, &c); err != nil {
		return api.RegistryCredential{}, fmt.Errorf("registry credential %q: %w", x.Spec.Name, err)
	}
	return c, nil
}

func decodeRegistryAuth(h string) (api.RegistryCredential, error) {
	b, err := base64.StdEncoding.DecodeString(h)
	if err != nil {
		b, err = base64.URLEncoding.DecodeString(h)
	}
	if err != nil {
		return api.RegistryCredential{}, fmt.Errorf("not base64: %w", err)
	}
	defer clear(b)
	var c api.RegistryCredential
	if err := json.Unmarshal(b, &c); err != nil {
		return api.RegistryCredential{}, fmt.Errorf("not a JSON {username, password}: %w", err)
	}
	if c.Username == "" || c.Password == "" {
		return api.RegistryCredential{}, fmt.Errorf("username and password must not be empty")
	}
	return c, nil
}

// imageStoreName is the name `warren image load` keeps an archive under
// (fully qualified, as containerd names images).
func imageStoreName(ref string) string {
	name, tag := ref, ""
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		name, tag = ref[:i], ref[i:]
	}
	if tag == "" {
		tag = ":latest"
	}
	first, _, hasSlash := strings.Cut(name, "/")
	if !hasSlash || (!strings.ContainsAny(first, ".:") && first != "localhost") {
		if !hasSlash {
			name = "library/" + name
		}
		name = "docker.io/" + name
	}
	return name + tag
}

type warningsKey struct{}

// withWarnings carries warnings from a step before changeService to the
// result it writes.
func withWarnings(r *http.Request, w []string) *http.Request {
	if len(w) == 0 {
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), warningsKey{}, w))
}

func warningsOf(r *http.Request) []string {
	w, _ := r.Context().Value(warningsKey{}).([]string)
	return w
}

func validDigest(d string) bool {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// forgetRegistryAuth adds to b the removal of a service's own registry
// credential: it goes with the service (its tasks, being removed, pull
// nothing more).
func forgetRegistryAuth(v *store.View, svc api.Service, b *store.Batch) {
	x, ok := v.SecretByName(api.KindRegistryAuth, api.RegistryAuthName(svc.Spec.Name))
	if !ok {
		return
	}
	b.Expect = append(b.Expect, store.Expectation{Kind: string(api.KindRegistryAuth), ID: x.ID, Version: x.Meta.Version})
	if b.Secrets == nil {
		b.Secrets = &store.SecretChanges{}
	}
	b.Secrets.Delete = append(b.Secrets.Delete, store.SecretID{Kind: api.KindRegistryAuth, ID: x.ID})
}
