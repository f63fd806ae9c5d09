package store

import (
	"fmt"
	"slices"
	"strings"

	"github.com/warrenhq/warren/controlplane/api"
)

// SecretChanges puts and deletes secrets and configs. Values arrive
// already sealed: the FSM never sees a key or a value in clear.
//
// The FSM enforces what must hold on every replica whatever the API
// checked: names are unique per kind, an object a service mounts cannot be
// deleted, and a service put in the same batch mounts only objects that
// exist once the batch applied.
type SecretChanges struct {
	Put    []api.Secret `json:"put,omitempty"`
	Delete []SecretID   `json:"delete,omitempty"`
}

// SecretID names one secret or config.
type SecretID struct {
	Kind api.SecretKind `json:"kind"`
	ID   string         `json:"id"`
}

func secretKey(kind api.SecretKind, id string) []byte { return pairKey(string(kind), id) }

func (t *txn) putSecret(s *api.Secret) {
	t.secrets.Insert(secretKey(s.Kind, s.ID), s)
	t.secNames.Insert(secretKey(s.Kind, s.Spec.Name), s)
}

func (t *txn) applySecrets(b *Batch) error {
	if c := b.Secrets; c != nil {
		for _, d := range c.Delete {
			v, ok := t.secrets.Get(secretKey(d.Kind, d.ID))
			if !ok {
				continue
			}
			old := v.(*api.Secret)
			if users := usersOf(t, d.Kind, d.ID); len(users) > 0 {
				return fmt.Errorf("%s %q is used by service %s: %w", d.Kind, old.Spec.Name, strings.Join(users, ", "), ErrConflict)
			}
			t.secrets.Delete(secretKey(d.Kind, d.ID))
			t.secNames.Delete(secretKey(d.Kind, old.Spec.Name))
		}
		for i := range c.Put {
			s := &c.Put[i]
			if s.ID == "" || s.Spec.Name == "" || !s.Kind.Valid() {
				return fmt.Errorf("put secret %d: %w: empty id or name, or unknown kind %q", i, ErrInvalid, s.Kind)
			}
			if v, ok := t.secNames.Get(secretKey(s.Kind, s.Spec.Name)); ok && v.(*api.Secret).ID != s.ID {
				return fmt.Errorf("%s name %q is taken by %s: %w", s.Kind, s.Spec.Name, v.(*api.Secret).ID, ErrConflict)
			}
			var old *api.Meta
			if v, ok := t.secrets.Get(secretKey(s.Kind, s.ID)); ok {
				prev := v.(*api.Secret)
				old = &prev.Meta
				if prev.Spec.Name != s.Spec.Name {
					t.secNames.Delete(secretKey(s.Kind, prev.Spec.Name))
				}
			}
			s.Meta = t.stamp(old)
			t.putSecret(s)
		}
	}
	for _, svc := range b.PutServices {
		for _, ref := range refsOf(svc.Spec) {
			if _, ok := t.secrets.Get(secretKey(ref.kind, ref.ID)); !ok {
				return fmt.Errorf("service %q mounts %s %q (%s), which does not exist: %w", svc.Spec.Name, ref.kind, ref.Name, ref.ID, ErrConflict)
			}
		}
	}
	return nil
}

type kindRef struct {
	kind api.SecretKind
	api.SecretRef
}

// refsOf lists the secrets and configs a service spec mounts.
func refsOf(spec api.ServiceSpec) []kindRef {
	c := spec.Task.Container
	out := make([]kindRef, 0, len(c.Secrets)+len(c.Configs))
	for _, r := range c.Secrets {
		out = append(out, kindRef{api.KindSecret, r})
	}
	for _, r := range c.Configs {
		out = append(out, kindRef{api.KindConfig, r})
	}
	return out
}

// usersOf names the services (sorted) that mount the object.
func usersOf(t *txn, kind api.SecretKind, id string) []string {
	var out []string
	t.services.Root().Walk(func(_ []byte, x interface{}) bool {
		svc := x.(*api.Service)
		for _, r := range refsOf(svc.Spec) {
			if r.kind == kind && r.ID == id {
				out = append(out, svc.Spec.Name)
				break
			}
		}
		return false
	})
	slices.Sort(out)
	return out
}

// Secret returns one secret or config by ID.
func (v *View) Secret(kind api.SecretKind, id string) (api.Secret, bool) {
	if x, ok := v.st.secrets.Get(secretKey(kind, id)); ok {
		return *x.(*api.Secret), true
	}
	return api.Secret{}, false
}

// SecretByName returns the secret or config with the given name.
func (v *View) SecretByName(kind api.SecretKind, name string) (api.Secret, bool) {
	if x, ok := v.st.secNames.Get(secretKey(kind, name)); ok {
		return *x.(*api.Secret), true
	}
	return api.Secret{}, false
}

// Secrets returns every object of the kind, sorted by ID.
func (v *View) Secrets(kind api.SecretKind) []api.Secret {
	out := list[api.Secret](v.st.secrets, secretKey(kind, ""))
	if out == nil {
		out = []api.Secret{}
	}
	return out
}

// SecretUsers names the services (sorted) that mount the object.
func (v *View) SecretUsers(kind api.SecretKind, id string) []string {
	return usersOf(&txn{services: v.st.services.Txn()}, kind, id)
}
