package store

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
)

func sec(kind api.SecretKind, id, name string) api.Secret {
	return api.Secret{ID: id, Kind: kind, Spec: api.SecretSpec{Name: name}, Sealed: []byte("sealed:" + id), Size: 3}
}

func svcWith(id, name string, secrets, configs []api.SecretRef) api.Service {
	s := svc(id, name)
	s.Spec.Task.Container.Secrets = secrets
	s.Spec.Task.Container.Configs = configs
	return s
}

func TestSecretBatchHasItsOwnCommandType(t *testing.T) {
	data, err := Encode(&Batch{Secrets: &SecretChanges{Put: []api.Secret{sec(api.KindSecret, "x1", "db")}}})
	if err != nil {
		t.Fatal(err)
	}
	if CommandType(data[0]) != CmdSecretBatch {
		t.Fatalf("type byte %d, want %d: an older manager would drop the secret silently", data[0], CmdSecretBatch)
	}
	if CmdSecretBatch&IgnorableCommandFlag != 0 {
		t.Fatal("secret batches must be essential")
	}
	plain, _ := Encode(&Batch{})
	if CommandType(plain[0]) != CmdBatch {
		t.Fatalf("a batch without secrets changed type to %d", plain[0])
	}
}

func TestSecretsPutListNames(t *testing.T) {
	s := New()
	mustApply(t, s, &Batch{Now: t0, Secrets: &SecretChanges{Put: []api.Secret{
		sec(api.KindSecret, "s1", "db"), sec(api.KindConfig, "c1", "db"), sec(api.KindSecret, "s2", "tls"),
	}}})
	v := s.View()
	if got := v.Secrets(api.KindSecret); len(got) != 2 || got[0].ID != "s1" || got[1].ID != "s2" {
		t.Fatalf("secrets = %+v", got)
	}
	if got := v.Secrets(api.KindConfig); len(got) != 1 || got[0].ID != "c1" {
		t.Fatalf("configs = %+v (a secret and a config may share a name)", got)
	}
	if x, ok := v.SecretByName(api.KindSecret, "tls"); !ok || x.ID != "s2" || x.Meta.Version != 1 {
		t.Fatalf("by name = %+v, %v", x, ok)
	}
	err := apply(t, s, &Batch{Secrets: &SecretChanges{Put: []api.Secret{sec(api.KindSecret, "s3", "db")}}})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), `"db"`) {
		t.Fatalf("duplicate name: %v", err)
	}
	// Rename frees the old name.
	r := sec(api.KindSecret, "s1", "db2")
	mustApply(t, s, &Batch{Secrets: &SecretChanges{Put: []api.Secret{r}}})
	if _, ok := s.View().SecretByName(api.KindSecret, "db"); ok {
		t.Fatal("old name still resolves after a rename")
	}
	for _, bad := range []api.Secret{{ID: "", Kind: api.KindSecret, Spec: api.SecretSpec{Name: "x"}}, {ID: "q", Kind: "key", Spec: api.SecretSpec{Name: "x"}}} {
		if err := apply(t, s, &Batch{Secrets: &SecretChanges{Put: []api.Secret{bad}}}); !errors.Is(err, ErrInvalid) {
			t.Errorf("put %+v: %v, want ErrInvalid", bad, err)
		}
	}
}

func TestSecretInUseCannotBeDeleted(t *testing.T) {
	s := New()
	mustApply(t, s, &Batch{Secrets: &SecretChanges{Put: []api.Secret{sec(api.KindSecret, "s1", "db"), sec(api.KindConfig, "c1", "app")}}})
	mustApply(t, s, &Batch{PutServices: []api.Service{
		svcWith("v1", "web", []api.SecretRef{{ID: "s1", Name: "db"}}, nil),
		svcWith("v2", "api", []api.SecretRef{{ID: "s1", Name: "db"}}, []api.SecretRef{{ID: "c1", Name: "app"}}),
	}})
	err := apply(t, s, &Batch{Secrets: &SecretChanges{Delete: []SecretID{{api.KindSecret, "s1"}}}})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "api, web") {
		t.Fatalf("delete in use: %v, want a conflict naming api, web", err)
	}
	if _, ok := s.View().Secret(api.KindSecret, "s1"); !ok {
		t.Fatal("a refused delete removed the secret")
	}
	if got := s.View().SecretUsers(api.KindConfig, "c1"); len(got) != 1 || got[0] != "api" {
		t.Fatalf("users of c1 = %v", got)
	}
	// Removing the services and the secret in one batch is fine.
	mustApply(t, s, &Batch{DeleteServices: []string{"v1", "v2"}, Secrets: &SecretChanges{Delete: []SecretID{{api.KindSecret, "s1"}}}})
	if _, ok := s.View().Secret(api.KindSecret, "s1"); ok {
		t.Fatal("secret survived its delete")
	}
	if _, ok := s.View().SecretByName(api.KindSecret, "db"); ok {
		t.Fatal("name survived the delete")
	}
}

func TestServiceMustMountExistingSecrets(t *testing.T) {
	s := New()
	err := apply(t, s, &Batch{PutServices: []api.Service{svcWith("v1", "web", []api.SecretRef{{ID: "nope", Name: "db"}}, nil)}})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), `secret "db"`) {
		t.Fatalf("service with unknown secret: %v", err)
	}
	if _, ok := s.View().Service("v1"); ok {
		t.Fatal("service stored although its secret does not exist")
	}
	// Created in the same batch: fine.
	mustApply(t, s, &Batch{
		PutServices: []api.Service{svcWith("v1", "web", nil, []api.SecretRef{{ID: "c9", Name: "conf"}})},
		Secrets:     &SecretChanges{Put: []api.Secret{sec(api.KindConfig, "c9", "conf")}},
	})
}

func TestSecretExpectations(t *testing.T) {
	s := New()
	mustApply(t, s, &Batch{Secrets: &SecretChanges{Put: []api.Secret{sec(api.KindSecret, "s1", "db")}}})
	v, _ := s.View().Secret(api.KindSecret, "s1")
	err := apply(t, s, &Batch{Expect: []Expectation{{Kind: KindSecret, ID: "s1", Version: v.Meta.Version + 1}},
		Secrets: &SecretChanges{Put: []api.Secret{sec(api.KindSecret, "s1", "db")}}})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("stale expectation: %v", err)
	}
	mustApply(t, s, &Batch{Expect: []Expectation{{Kind: KindSecret, ID: "s1", Version: v.Meta.Version}},
		Secrets: &SecretChanges{Put: []api.Secret{sec(api.KindSecret, "s1", "db")}}})
}

func TestSecretsSnapshotRoundTrip(t *testing.T) {
	s := New()
	mustApply(t, s, &Batch{Now: t0, Secrets: &SecretChanges{Put: []api.Secret{sec(api.KindSecret, "s1", "db"), sec(api.KindConfig, "c1", "app")}}})
	var a bytes.Buffer
	if err := s.Snapshot(&a); err != nil {
		t.Fatal(err)
	}
	r := New()
	if err := r.Restore(bytes.NewReader(a.Bytes())); err != nil {
		t.Fatal(err)
	}
	if x, ok := r.View().SecretByName(api.KindConfig, "app"); !ok || x.ID != "c1" || string(x.Sealed) != "sealed:c1" {
		t.Fatalf("restored config = %+v, %v", x, ok)
	}
	var b bytes.Buffer
	if err := r.Snapshot(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("snapshot of a restored store differs")
	}
}
