package apiserver

import (
	"bytes"
	"cmp"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/secretbox"
	"github.com/warrenhq/warren/controlplane/store"
)

// secretRoutes serve secrets and configs: the same five routes for each
// kind. Reading a secret never returns its value; only a node's own
// assignments carry values, sealed for that node.
func (s *Server) secretRoutes() []Route {
	var out []Route
	for _, k := range []api.SecretKind{api.KindSecret, api.KindConfig} {
		base := "/v1/" + string(k) + "s"
		out = append(out,
			Route{http.MethodPost, base, admins, Write, s.secretHandler(k, s.createSecret)},
			Route{http.MethodGet, base, readers, Read, s.secretHandler(k, s.listSecrets)},
			Route{http.MethodGet, base + "/{ref}", readers, Read, s.secretHandler(k, s.inspectSecret)},
			Route{http.MethodPost, base + "/{ref}/update", admins, Write, s.secretHandler(k, s.updateSecret)},
			Route{http.MethodDelete, base + "/{ref}", admins, Write, s.secretHandler(k, s.removeSecret)},
		)
	}
	return out
}

type secretFunc func(w http.ResponseWriter, r *http.Request, kind api.SecretKind) error

func (s *Server) secretHandler(kind api.SecretKind, f secretFunc) func(http.ResponseWriter, *http.Request, Identity) error {
	return func(w http.ResponseWriter, r *http.Request, _ Identity) error { return f(w, r, kind) }
}

// validSecretName refuses names that could escape a directory when they
// become a file name (the default target is /run/secrets/<name>).
func validSecretName(kind api.SecretKind, name string) error {
	switch {
	case name == "":
		return errorf(http.StatusBadRequest, "%s name: must not be empty", kind)
	case strings.Contains(name, "/"):
		return errorf(http.StatusBadRequest, "%s name %q: must not contain \"/\"", kind, name)
	case strings.Contains(name, ".."):
		return errorf(http.StatusBadRequest, "%s name %q: must not contain \"..\"", kind, name)
	case name == ".":
		return errorf(http.StatusBadRequest, "%s name \".\": not a file name", kind)
	case len(name) > 64:
		return errorf(http.StatusBadRequest, "%s name %q: longer than 64 characters", kind, name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return errorf(http.StatusBadRequest, "%s name %q: %q is not allowed (letters, digits, - _ .)", kind, name, c)
		}
	}
	return nil
}

func validSecretValue(kind api.SecretKind, name string, data []byte) error {
	limit := kind.MaxBytes()
	switch {
	case len(data) == 0:
		return errorf(http.StatusBadRequest, "%s %q: value is empty", kind, name)
	case len(data) > limit:
		return errorf(http.StatusBadRequest, "%s %q: value is %d bytes, over the limit of %d KiB", kind, name, len(data), limit>>10)
	}
	return nil
}

func findSecret(v *store.View, kind api.SecretKind, ref string) (api.Secret, error) {
	if x, ok := v.Secret(kind, ref); ok {
		return x, nil
	}
	if x, ok := v.SecretByName(kind, ref); ok {
		return x, nil
	}
	return api.Secret{}, errorf(http.StatusNotFound, "%s %q not found", kind, ref)
}

// dekCache keeps the last unwrapped data key, so that serving assignments
// does not unwrap it on every blocking query.
type dekCache struct {
	mu      sync.Mutex
	wrapped []byte
	dek     []byte
}

// dataKey returns the cluster's data key. When there is none yet it makes
// one and returns the cluster object to write with the caller's batch;
// the cluster expectation makes two managers racing to create it safe.
func (s *Server) dataKey(v *store.View) (dek []byte, next *api.Cluster, err error) {
	c, err := s.cluster(v)
	if err != nil {
		return nil, nil, err
	}
	kek := s.b.KEK()
	if len(kek) == 0 {
		return nil, nil, errorf(http.StatusServiceUnavailable, "%s", LockedMessage)
	}
	if w := c.Keys.WrappedDEK; len(w) > 0 {
		s.dek.mu.Lock()
		defer s.dek.mu.Unlock()
		if bytes.Equal(s.dek.wrapped, w) {
			return s.dek.dek, nil, nil
		}
		dek, err := secretbox.Open(kek, w, secretbox.AADDataKey)
		if err != nil {
			return nil, nil, fmt.Errorf("unwrap the cluster data key: %w", err)
		}
		s.dek.wrapped, s.dek.dek = w, dek
		return dek, nil, nil
	}
	dek, err = secretbox.NewKey(s.cfg.Rand)
	if err != nil {
		return nil, nil, err
	}
	w, err := secretbox.Seal(kek, dek, secretbox.AADDataKey, s.cfg.Rand)
	if err != nil {
		return nil, nil, err
	}
	nc := *c
	nc.Keys.WrappedDEK = w
	return dek, &nc, nil
}

// sealInto seals data for obj under the data key and adds to b what
// storing it needs (the cluster object, when the key is new).
func (s *Server) sealInto(v *store.View, obj *api.Secret, data []byte, b *store.Batch) error {
	dek, next, err := s.dataKey(v)
	if err != nil {
		return err
	}
	sealed, err := secretbox.Seal(dek, data, secretbox.ValueAAD(string(obj.Kind), obj.ID), s.cfg.Rand)
	if err != nil {
		return err
	}
	obj.Sealed, obj.Size = sealed, len(data)
	obj.Rotation++
	if next != nil {
		b.Cluster = next
		b.Expect = append(b.Expect, store.Expectation{Kind: store.KindCluster, Version: v.Cluster().Meta.Version})
	}
	return nil
}

func (s *Server) createSecret(w http.ResponseWriter, r *http.Request, kind api.SecretKind) error {
	var req client.SecretCreateRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := validSecretName(kind, req.Name); err != nil {
		return err
	}
	if err := validSecretValue(kind, req.Name, req.Data); err != nil {
		return err
	}
	v := s.b.View()
	if other, ok := v.SecretByName(kind, req.Name); ok {
		return errorf(http.StatusConflict, "%s %q: name already used by %s", kind, req.Name, other.ID)
	}
	id, err := api.NewID(s.cfg.Rand)
	if err != nil {
		return err
	}
	obj := api.Secret{ID: id, Kind: kind, Spec: api.SecretSpec{Name: req.Name, Labels: req.Labels}}
	b := &store.Batch{Expect: []store.Expectation{{Kind: string(kind), ID: id, Version: 0}}}
	if err := s.sealInto(v, &obj, req.Data, b); err != nil {
		return err
	}
	b.Secrets = &store.SecretChanges{Put: []api.Secret{obj}}
	idx, err := s.apply(r.Context(), b)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, client.WriteResult{Index: idx, ID: id})
	return nil
}

// info is what callers see; a config's value is opened for them.
func (s *Server) info(v *store.View, x api.Secret, withData bool) (client.SecretInfo, error) {
	out := client.SecretInfo{ID: x.ID, Kind: x.Kind, Spec: x.Spec, Size: x.Size, Meta: x.Meta, UsedBy: v.SecretUsers(x.Kind, x.ID)}
	if withData && x.Kind == api.KindConfig {
		dek, _, err := s.dataKey(v)
		if err != nil {
			return out, err
		}
		if out.Data, err = secretbox.Open(dek, x.Sealed, secretbox.ValueAAD(string(x.Kind), x.ID)); err != nil {
			return out, fmt.Errorf("open config %q: %w", x.Spec.Name, err)
		}
	}
	return out, nil
}

func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request, kind api.SecretKind) error {
	v := s.b.View()
	all := v.Secrets(kind)
	slices.SortFunc(all, func(a, b api.Secret) int { return cmp.Compare(a.Spec.Name, b.Spec.Name) })
	out := make([]client.SecretInfo, 0, len(all))
	for _, x := range all {
		i, err := s.info(v, x, false)
		if err != nil {
			return err
		}
		out = append(out, i)
	}
	writeIndex(w, v.Index())
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) inspectSecret(w http.ResponseWriter, r *http.Request, kind api.SecretKind) error {
	v := s.b.View()
	x, err := findSecret(v, kind, r.PathValue("ref"))
	if err != nil {
		return err
	}
	out, err := s.info(v, x, true)
	if err != nil {
		return err
	}
	writeIndex(w, v.Index())
	writeJSON(w, http.StatusOK, out)
	return nil
}

// updateSecret replaces the value and/or labels. Services mounting the
// object with restart=true get a new SpecVersion in the same raft entry,
// so the orchestrator rolls their tasks; every other task has its file
// rewritten in place by its node.
func (s *Server) updateSecret(w http.ResponseWriter, r *http.Request, kind api.SecretKind) error {
	var req client.SecretUpdateRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	v := s.b.View()
	x, err := findSecret(v, kind, r.PathValue("ref"))
	if err != nil {
		return err
	}
	b := &store.Batch{Expect: []store.Expectation{{Kind: string(kind), ID: x.ID, Version: x.Meta.Version}}}
	if req.Labels != nil {
		x.Spec.Labels = req.Labels
	}
	if req.Data != nil {
		if err := validSecretValue(kind, x.Spec.Name, req.Data); err != nil {
			return err
		}
		if err := s.sealInto(v, &x, req.Data, b); err != nil {
			return err
		}
		for _, svc := range v.Services() {
			next, ok := withRotation(svc.Spec, kind, x.ID, x.Rotation)
			if !ok {
				continue
			}
			b.Expect = append(b.Expect, store.Expectation{Kind: store.KindService, ID: svc.ID, Version: svc.Meta.Version})
			prev := svc.Spec
			svc.PreviousSpec = &prev
			svc.Spec = next
			svc.SpecVersion++
			svc.Update = nil
			b.PutServices = append(b.PutServices, svc)
		}
	}
	b.Secrets = &store.SecretChanges{Put: []api.Secret{x}}
	idx, err := s.apply(r.Context(), b)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, client.WriteResult{Index: idx, ID: x.ID})
	return nil
}

// withRotation returns spec with its restart=true mounts of the object
// moved to the new rotation, and whether there were any. Like an update by
// the operator, this changes the task template, which is what makes the
// orchestrator roll the tasks by the service's update strategy.
func withRotation(spec api.ServiceSpec, kind api.SecretKind, id string, rotation uint64) (api.ServiceSpec, bool) {
	c := &spec.Task.Container
	refs := &c.Secrets
	if kind == api.KindConfig {
		refs = &c.Configs
	}
	out := slices.Clone(*refs)
	changed := false
	for i := range out {
		if out[i].ID == id && out[i].Restart {
			out[i].Rotation = rotation
			changed = true
		}
	}
	*refs = out
	return spec, changed
}

func (s *Server) removeSecret(w http.ResponseWriter, r *http.Request, kind api.SecretKind) error {
	v := s.b.View()
	x, err := findSecret(v, kind, r.PathValue("ref"))
	if err != nil {
		return err
	}
	if users := v.SecretUsers(kind, x.ID); len(users) > 0 {
		return errorf(http.StatusConflict, "%s %q is in use by service %s; remove it from them first (service update --%s-rm %s)",
			kind, x.Spec.Name, strings.Join(users, ", "), kind, x.Spec.Name)
	}
	idx, err := s.apply(r.Context(), &store.Batch{
		Expect:  []store.Expectation{{Kind: string(kind), ID: x.ID, Version: x.Meta.Version}},
		Secrets: &store.SecretChanges{Delete: []store.SecretID{{Kind: kind, ID: x.ID}}},
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, client.WriteResult{Index: idx, ID: x.ID})
	return nil
}

// resolveSecretRefs checks a service spec's secrets and configs against
// the store, fills their IDs and Swarm's defaults (target
// /run/secrets/<name> or /<name>, mode 0444), and refuses unknown names,
// relative targets and two mounts at one target.
func resolveSecretRefs(v *store.View, spec *api.ServiceSpec) error {
	targets := map[string]string{}
	c := &spec.Task.Container
	for _, kind := range []api.SecretKind{api.KindSecret, api.KindConfig} {
		refs := &c.Secrets
		if kind == api.KindConfig {
			refs = &c.Configs
		}
		if len(*refs) == 0 {
			continue
		}
		out := slices.Clone(*refs)
		for i := range out {
			ref := &out[i]
			x, ok := v.SecretByName(kind, ref.Name)
			if !ok {
				return errorf(http.StatusBadRequest, "service %q: %s %q not found (create it with warren %s create)", spec.Name, kind, ref.Name, kind)
			}
			ref.ID = x.ID
			ref.Rotation = 0
			if ref.Restart {
				ref.Rotation = x.Rotation
			}
			if ref.Target == "" {
				ref.Target = "/run/secrets/" + ref.Name
				if kind == api.KindConfig {
					ref.Target = "/" + ref.Name
				}
			}
			if !path.IsAbs(ref.Target) || path.Clean(ref.Target) != ref.Target || ref.Target == "/" {
				return errorf(http.StatusBadRequest, "service %q: %s %q: target %q must be a clean absolute file path", spec.Name, kind, ref.Name, ref.Target)
			}
			if ref.Mode == 0 {
				ref.Mode = 0o444
			}
			if ref.Mode&^0o777 != 0 {
				return errorf(http.StatusBadRequest, "service %q: %s %q: mode %o has bits beyond 0777", spec.Name, kind, ref.Name, ref.Mode)
			}
			if prev, ok := targets[ref.Target]; ok {
				return errorf(http.StatusBadRequest, "service %q: %s %q and %s both mount at %s", spec.Name, kind, ref.Name, prev, ref.Target)
			}
			targets[ref.Target] = fmt.Sprintf("%s %q", kind, ref.Name)
		}
		*refs = out
	}
	return nil
}

// nodeSecrets are the values the node's running tasks mount, sealed under
// the node's cache key, which goes with them.
func (s *Server) nodeSecrets(v *store.View, nodeID string, tasks []api.Task) ([]api.SecretValue, []byte, error) {
	type key struct {
		kind api.SecretKind
		id   string
	}
	want := map[key]bool{}
	for _, t := range tasks {
		if t.NodeID != nodeID || t.DesiredState.Terminal() {
			continue
		}
		for _, r := range t.Spec.Container.Secrets {
			want[key{api.KindSecret, r.ID}] = true
		}
		for _, r := range t.Spec.Container.Configs {
			want[key{api.KindConfig, r.ID}] = true
		}
		for _, id := range registryAuthIDs(v, t) {
			want[key{api.KindRegistryAuth, id}] = true
		}
	}
	if len(want) == 0 {
		return nil, nil, nil
	}
	dek, _, err := s.dataKey(v)
	if err != nil {
		return nil, nil, err
	}
	ck := secretbox.NodeCacheKey(dek, nodeID)
	var out []api.SecretValue
	for k := range want {
		x, ok := v.Secret(k.kind, k.id)
		if !ok {
			continue // the agent reports the task as waiting for it
		}
		aad := secretbox.ValueAAD(string(x.Kind), x.ID)
		pt, err := secretbox.Open(dek, x.Sealed, aad)
		if err != nil {
			return nil, nil, fmt.Errorf("open %s %q: %w", x.Kind, x.Spec.Name, err)
		}
		sealed, err := secretbox.Seal(ck, pt, aad, s.cfg.Rand)
		clear(pt)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, api.SecretValue{ID: x.ID, Kind: x.Kind, Name: x.Spec.Name, Version: x.Meta.Version, Sealed: sealed})
	}
	slices.SortFunc(out, func(a, b api.SecretValue) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID)) })
	return out, ck, nil
}
