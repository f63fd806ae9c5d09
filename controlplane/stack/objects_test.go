package stack

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
)

// The fake cluster's secrets, configs and volumes; like the API it refuses a
// service that mounts a secret or config it does not know, and the removal
// of one a service still mounts.

func (f *fakeCluster) init() {
	if f.secrets == nil {
		f.secrets, f.volumes, f.data = map[string]api.Secret{}, map[string]api.Volume{}, map[string][]byte{}
	}
}

func (f *fakeCluster) refsExist(spec api.ServiceSpec) error {
	f.init()
	for _, r := range spec.Task.Container.Secrets {
		if _, ok := f.secrets["secret/"+r.Name]; !ok {
			return fmt.Errorf("service %q: secret %q not found", spec.Name, r.Name)
		}
	}
	for _, r := range spec.Task.Container.Configs {
		if _, ok := f.secrets["config/"+r.Name]; !ok {
			return fmt.Errorf("service %q: config %q not found", spec.Name, r.Name)
		}
	}
	return nil
}

func (f *fakeCluster) CreateSecret(_ context.Context, kind api.SecretKind, spec api.SecretSpec, data []byte) error {
	f.init()
	k := string(kind) + "/" + spec.Name
	f.calls = append(f.calls, "create "+k)
	if _, ok := f.secrets[k]; ok {
		return fmt.Errorf("%s exists", k)
	}
	f.secrets[k] = api.Secret{ID: "id-" + k, Kind: kind, Spec: spec}
	f.data[k] = slices.Clone(data)
	return nil
}

func (f *fakeCluster) UpdateSecret(_ context.Context, kind api.SecretKind, name string, labels map[string]string, data []byte) error {
	f.init()
	k := string(kind) + "/" + name
	f.calls = append(f.calls, "update "+k)
	s, ok := f.secrets[k]
	if !ok {
		return fmt.Errorf("%s not found", k)
	}
	s.Spec.Labels = maps.Clone(labels)
	f.secrets[k] = s
	f.data[k] = slices.Clone(data)
	return nil
}

func (f *fakeCluster) RemoveSecret(_ context.Context, kind api.SecretKind, name string) error {
	f.init()
	k := string(kind) + "/" + name
	f.calls = append(f.calls, "remove "+k)
	for _, svc := range f.services {
		refs := svc.Spec.Task.Container.Secrets
		if kind == api.KindConfig {
			refs = svc.Spec.Task.Container.Configs
		}
		for _, r := range refs {
			if r.Name == name {
				return fmt.Errorf("%s is in use by service %s", k, svc.Spec.Name)
			}
		}
	}
	delete(f.secrets, k)
	return nil
}

func (f *fakeCluster) CreateVolume(_ context.Context, spec api.VolumeSpec) error {
	f.init()
	f.calls = append(f.calls, "create volume/"+spec.Name)
	f.volumes[spec.Name] = api.Volume{Name: spec.Name, Spec: spec}
	return nil
}

func (f *fakeCluster) RemoveVolume(_ context.Context, name string) error {
	f.init()
	f.calls = append(f.calls, "remove volume/"+name)
	delete(f.volumes, name)
	return nil
}

func (f *fakeCluster) current() Current {
	f.init()
	var c Current
	for _, s := range f.services {
		c.Services = append(c.Services, *s)
	}
	for _, s := range f.secrets {
		c.Secrets = append(c.Secrets, s)
	}
	for _, v := range f.volumes {
		c.Volumes = append(c.Volumes, v)
	}
	return c
}

// pgStack is a database with a password secret, a config and a data volume.
func pgStack(password string) Stack {
	db := spec("db", "postgres")
	db.Task.Container.Secrets = []api.SecretRef{{Name: "shop_db-password", Target: "/run/secrets/db-password"}}
	db.Task.Container.Configs = []api.SecretRef{{Name: "shop_pg-conf", Target: "/etc/pg.conf", Mode: 0o440}}
	db.Task.Container.Mounts = []api.Mount{{Type: api.MountVolume, Source: "shop_data", Target: "/var/lib/postgresql/data"}}
	return Qualify(Stack{
		Services: []Service{{Name: "db", Spec: db}},
		Secrets:  []Object{{Name: "db-password", Data: []byte(password), Source: "file db/password.txt"}},
		Configs:  []Object{{Name: "pg-conf", Data: []byte("max_connections=10")}},
		Volumes:  []Volume{{Name: "data"}},
	}, "shop")
}

func TestQualifyObjects(t *testing.T) {
	st := pgStack("s3cret")
	if got := st.Secrets[0].Spec.Name; got != "shop_db-password" {
		t.Errorf("secret name %q, want shop_db-password", got)
	}
	if got := st.Volumes[0].Spec.Name; got != "shop_data" {
		t.Errorf("volume name %q, want shop_data", got)
	}
	for _, labels := range []map[string]string{st.Secrets[0].Spec.Labels, st.Configs[0].Spec.Labels, st.Volumes[0].Spec.Labels} {
		if labels[LabelStack] != "shop" {
			t.Errorf("labels %v: no %s=shop", labels, LabelStack)
		}
	}
	d := st.Secrets[0].Spec.Labels[LabelDigest]
	if d != Digest(ObjSecret, "shop_db-password", []byte("s3cret")) || d == Digest(ObjSecret, "shop_other", []byte("s3cret")) {
		t.Errorf("digest %q does not bind the value to the object's name", d)
	}
	if b, _ := st.YAML(); strings.Contains(string(b), "s3cret") {
		t.Errorf("stack config shows the secret's value:\n%s", b)
	}
	ext := Qualify(Stack{Secrets: []Object{{Name: "tls", External: true, Spec: api.SecretSpec{Name: "tls"}}}}, "shop")
	if len(ext.Secrets[0].Spec.Labels) != 0 {
		t.Errorf("an external secret got labels %v: the stack would claim it", ext.Secrets[0].Spec.Labels)
	}
}

func TestPlanObjects(t *testing.T) {
	mine := pgStack("s3cret")
	secret := func(kind api.SecretKind, name string, labels map[string]string) api.Secret {
		return api.Secret{ID: "x", Kind: kind, Spec: api.SecretSpec{Name: name, Labels: labels}}
	}
	labelled := func(o Object) map[string]string { return o.Spec.Labels }
	tests := []struct {
		name    string
		desired Stack
		cur     Current
		prune   bool
		want    []string // "action kind name"
		orphans []string
		deletes []string
		err     string
	}{
		{name: "empty cluster: all created", desired: mine,
			want: []string{"create secret shop_db-password", "create config shop_pg-conf", "create volume shop_data"}},
		{name: "same values: unchanged", desired: mine,
			cur: Current{
				Secrets: []api.Secret{secret(api.KindSecret, "shop_db-password", labelled(mine.Secrets[0])), secret(api.KindConfig, "shop_pg-conf", labelled(mine.Configs[0]))},
				Volumes: []api.Volume{{Name: "shop_data", Spec: api.VolumeSpec{Name: "shop_data", Driver: "local", Scope: api.ScopeSingleNode, Labels: mine.Volumes[0].Spec.Labels}}},
			},
			want: []string{"unchanged secret shop_db-password", "unchanged config shop_pg-conf", "unchanged volume shop_data"}},
		{name: "new password: the secret is updated", desired: pgStack("n3w"),
			cur:  Current{Secrets: []api.Secret{secret(api.KindSecret, "shop_db-password", labelled(mine.Secrets[0]))}},
			want: []string{"update secret shop_db-password", "create config shop_pg-conf", "create volume shop_data"}},
		{name: "a same-named secret of no stack is not taken over", desired: mine,
			cur: Current{Secrets: []api.Secret{secret(api.KindSecret, "shop_db-password", nil)}},
			err: "secrets.db-password: secret shop_db-password exists and is not part of stack shop"},
		{name: "a volume made by the first use of the stack's service is the stack's", desired: mine,
			cur: Current{
				Services: []api.Service{{Spec: api.ServiceSpec{Name: "shop_db", Labels: map[string]string{LabelStack: "shop"}}}},
				Volumes:  []api.Volume{{Name: "shop_data", Spec: api.VolumeSpec{Name: "shop_data", Driver: "local"}, Status: api.VolumeStatus{CreatedBy: "shop_db"}}},
			},
			want: []string{"create secret shop_db-password", "create config shop_pg-conf", "unchanged volume shop_data"}},
		{name: "one made by the first use of another service is not", desired: mine,
			cur: Current{Volumes: []api.Volume{{Name: "shop_data", Spec: api.VolumeSpec{Name: "shop_data"}, Status: api.VolumeStatus{CreatedBy: "keep"}}}},
			err: "volumes.data: volume shop_data exists and is not part of stack shop"},
		{name: "a volume of another stack is not taken over", desired: mine,
			cur: Current{Volumes: []api.Volume{{Name: "shop_data", Spec: api.VolumeSpec{Name: "shop_data", Labels: map[string]string{LabelStack: "other"}}}}},
			err: "volumes.data: volume shop_data exists and is not part of stack shop"},
		{name: "a volume's driver cannot change", desired: mine,
			cur: Current{Volumes: []api.Volume{{Name: "shop_data", Spec: api.VolumeSpec{Name: "shop_data", Driver: "sshfs", Labels: map[string]string{LabelStack: "shop"}}}}},
			err: "volumes.data: volume shop_data exists with driver sshfs (no options), the file asks for local (no options): volumes cannot change in place"},
		{name: "external secret must exist", desired: Qualify(Stack{Secrets: []Object{{Name: "tls", External: true, Spec: api.SecretSpec{Name: "tls"}}}}, "shop"),
			err: "secrets.tls: external secret tls does not exist"},
		{name: "external secret present: used, not planned", desired: Qualify(Stack{Secrets: []Object{{Name: "tls", External: true, Spec: api.SecretSpec{Name: "tls"}}}}, "shop"),
			cur: Current{Secrets: []api.Secret{secret(api.KindSecret, "tls", nil)}}},
		{name: "objects the file dropped are orphans without prune", desired: Qualify(Stack{}, "shop"),
			cur: Current{
				Secrets: []api.Secret{secret(api.KindSecret, "shop_old", map[string]string{LabelStack: "shop"}), secret(api.KindSecret, "other_x", map[string]string{LabelStack: "other"})},
				Volumes: []api.Volume{{Name: "shop_v", Spec: api.VolumeSpec{Labels: map[string]string{LabelStack: "shop"}}}, {Name: "unlabelled"}},
			},
			orphans: []string{"secret shop_old", "volume shop_v"}},
		{name: "and deleted with prune, nothing else", desired: Qualify(Stack{}, "shop"), prune: true,
			cur: Current{
				Secrets: []api.Secret{secret(api.KindConfig, "shop_old", map[string]string{LabelStack: "shop"}), secret(api.KindSecret, "other_x", map[string]string{LabelStack: "other"})},
				Volumes: []api.Volume{{Name: "shop_v", Spec: api.VolumeSpec{Labels: map[string]string{LabelStack: "shop"}}}, {Name: "unlabelled"}},
			},
			deletes: []string{"delete config shop_old", "delete volume shop_v"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := MakePlanAll(tc.desired, tc.cur, tc.prune)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got, deletes []string
			for _, s := range p.Objects {
				got = append(got, fmt.Sprintf("%s %s %s", s.Action, s.Kind, s.Name))
			}
			for _, s := range p.Deletes {
				deletes = append(deletes, fmt.Sprintf("%s %s %s", s.Action, s.Kind, s.Name))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("objects %q, want %q", got, tc.want)
			}
			if !slices.Equal(deletes, tc.deletes) {
				t.Errorf("deletes %q, want %q", deletes, tc.deletes)
			}
			if !slices.Equal(p.ObjectOrphans, tc.orphans) {
				t.Errorf("orphans %q, want %q", p.ObjectOrphans, tc.orphans)
			}
		})
	}
}

// TestDeployObjects: the objects come before the services that mount them;
// a second apply of the same stack changes nothing; a changed password
// updates only the secret's value; pruning removes what the file dropped
// after the service stopped mounting it.
func TestDeployObjects(t *testing.T) {
	f := newFake()
	st := pgStack("s3cret")
	p, err := MakePlanAll(st, f.current(), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := Deploy(context.Background(), f, st, p, f.opts()); err != nil {
		t.Fatal(err)
	}
	if !before(f.calls, "create secret/shop_db-password", "create shop_db") || !before(f.calls, "create config/shop_pg-conf", "create shop_db") || !before(f.calls, "create volume/shop_data", "create shop_db") {
		t.Errorf("objects not created before the service: %q", f.calls)
	}
	if string(f.data["secret/shop_db-password"]) != "s3cret" {
		t.Errorf("secret value %q", f.data["secret/shop_db-password"])
	}

	again, err := MakePlanAll(st, f.current(), false)
	if err != nil {
		t.Fatal(err)
	}
	if again.Changed() {
		t.Errorf("re-applying the same stack changes:\n%s", again)
	}

	f.calls = nil
	st2 := pgStack("n3w")
	p2, err := MakePlanAll(st2, f.current(), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := Deploy(context.Background(), f, st2, p2, f.opts()); err != nil {
		t.Fatal(err)
	}
	if string(f.data["secret/shop_db-password"]) != "n3w" || !slices.Contains(f.calls, "update secret/shop_db-password") {
		t.Errorf("the new password was not written: %q, calls %q", f.data["secret/shop_db-password"], f.calls)
	}
	for _, c := range f.calls {
		if strings.HasPrefix(c, "update shop_db") || strings.HasPrefix(c, "create ") {
			t.Errorf("a new value replaced more than the value: %q", f.calls)
		}
	}

	// The config leaves the file: the service is updated first, the
	// config removed after (the fake refuses removing a config in use).
	f.calls = nil
	st3 := pgStack("n3w")
	st3.Configs = nil
	st3.Services[0].Spec.Task.Container.Configs = nil
	p3, err := MakePlanAll(st3, f.current(), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := Deploy(context.Background(), f, st3, p3, f.opts()); err != nil {
		t.Fatal(err)
	}
	if !before(f.calls, "update shop_db", "remove config/shop_pg-conf") {
		t.Errorf("config removed before the service stopped mounting it: %q", f.calls)
	}
	if _, ok := f.secrets["config/shop_pg-conf"]; ok {
		t.Error("pruned config still there")
	}
}

func TestStackObjects(t *testing.T) {
	secrets := []api.Secret{
		{Kind: api.KindSecret, Spec: api.SecretSpec{Name: "shop_pw", Labels: map[string]string{LabelStack: "shop"}}},
		{Kind: api.KindConfig, Spec: api.SecretSpec{Name: "shop_conf", Labels: map[string]string{LabelStack: "shop"}}},
		{Kind: api.KindSecret, Spec: api.SecretSpec{Name: "shop_mine", Labels: map[string]string{"owner": "me"}}},
		{Kind: api.KindSecret, Spec: api.SecretSpec{Name: "other_pw", Labels: map[string]string{LabelStack: "other"}}},
	}
	volumes := []api.Volume{
		{Name: "shop_data", Spec: api.VolumeSpec{Labels: map[string]string{LabelStack: "shop"}}},
		{Name: "shop_data2"},
		{Name: "shop_old", Status: api.VolumeStatus{CreatedBy: "shop_db"}},
		{Name: "keep_data", Status: api.VolumeStatus{CreatedBy: "keep"}},
	}
	services := []api.Service{
		{Spec: api.ServiceSpec{Name: "shop_db", Labels: map[string]string{LabelStack: "shop"}}},
		{Spec: api.ServiceSpec{Name: "keep"}},
	}
	var got []string
	for _, s := range StackObjects("shop", services, secrets, volumes) {
		got = append(got, string(s.Kind)+" "+s.Name)
	}
	want := []string{"config shop_conf", "secret shop_pw", "volume shop_data", "volume shop_old"}
	if !slices.Equal(got, want) {
		t.Errorf("stack rm would remove %q, want %q", got, want)
	}
}

// TestDiffIgnoresResolvedRefs: the API fills a mount's ID, default target
// and mode; a spec read back must still equal the file's, or every apply
// would roll the service.
func TestDiffIgnoresResolvedRefs(t *testing.T) {
	file := spec("db", "postgres")
	file.Task.Container.Secrets = []api.SecretRef{{Name: "shop_pw"}}
	file.Task.Container.Configs = []api.SecretRef{{Name: "shop_conf", Target: "/etc/x.conf"}}
	stored := file
	stored.Task.Container.Secrets = []api.SecretRef{{ID: "abc", Name: "shop_pw", Target: "/run/secrets/shop_pw", Mode: 0o444}}
	stored.Task.Container.Configs = []api.SecretRef{{ID: "def", Name: "shop_conf", Target: "/etc/x.conf", Mode: 0o444, Rotation: 3}}
	if d := Diff(stored, file); len(d) != 0 {
		t.Errorf("a stored spec differs from its file: %v", d)
	}
	changed := file
	changed.Task.Container.Secrets = []api.SecretRef{{Name: "shop_pw", Target: "/run/secrets/pw"}}
	if d := Diff(stored, changed); len(d) != 1 || d[0].Field != "task.container.secrets[0].target" {
		t.Errorf("a new target is not one change: %v", d)
	}
}

// TestWarrenFileObjects: warren.yaml declares secrets, configs and volumes
// as documents; their values are read by ResolveValues, relative to the
// declaring file, and the services' mounts of them get the stack's names.
func TestWarrenFileObjects(t *testing.T) {
	files := []File{{Name: "/srv/shop/warren.yaml", Data: []byte(`kind: Secret
name: db-password
file: db/password.txt
labels: {team: db}
---
kind: Config
name: motd
environment: MOTD
---
kind: Secret
name: tls
external: true
---
kind: Volume
name: data
---
kind: Service
name: db
task:
  container:
    image: postgres
    secrets: [{name: db-password}, {name: tls, target: /etc/tls.pem}]
    configs: [{name: motd}]
    mounts: [{type: volume, source: data, target: /var/lib/pg}, {type: volume, source: elsewhere, target: /x}]
`)}}
	st, err := ParseFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	read := map[string]string{"/srv/shop/db/password.txt": "s3cret"}
	err = ResolveValues(&st, func(p string) ([]byte, error) {
		if v, ok := read[p]; ok {
			return []byte(v), nil
		}
		return nil, fmt.Errorf("open %s: no such file", p)
	}, func(k string) (string, bool) { return map[string]string{"MOTD": "hi"}[k], k == "MOTD" })
	if err != nil {
		t.Fatal(err)
	}
	q := Qualify(QualifyRefs(st, "shop"), "shop")
	if len(q.Secrets) != 2 || string(q.Secrets[0].Data) != "s3cret" || q.Secrets[0].Spec.Name != "shop_db-password" || q.Secrets[0].Spec.Labels["team"] != "db" {
		t.Errorf("secrets %+v", q.Secrets)
	}
	if q.Secrets[1].Spec.Name != "tls" || !q.Secrets[1].External {
		t.Errorf("external secret %+v", q.Secrets[1])
	}
	if len(q.Configs) != 1 || string(q.Configs[0].Data) != "hi" {
		t.Errorf("configs %+v", q.Configs)
	}
	if len(q.Volumes) != 1 || q.Volumes[0].Spec.Name != "shop_data" || q.Volumes[0].Spec.Driver != api.LocalDriver {
		t.Errorf("volumes %+v", q.Volumes)
	}
	c := q.Services[0].Spec.Task.Container
	wantSecrets := []api.SecretRef{{Name: "shop_db-password", Target: "/run/secrets/db-password"}, {Name: "tls", Target: "/etc/tls.pem"}}
	if !slices.Equal(c.Secrets, wantSecrets) {
		t.Errorf("secret mounts %+v, want %+v", c.Secrets, wantSecrets)
	}
	if c.Configs[0].Name != "shop_motd" || c.Configs[0].Target != "/motd" {
		t.Errorf("config mount %+v", c.Configs[0])
	}
	if c.Mounts[0].Source != "shop_data" || c.Mounts[1].Source != "elsewhere" {
		t.Errorf("volume mounts %+v: the declared volume is the stack's, the other a cluster volume", c.Mounts)
	}
	// The parsed stack itself was not changed by qualifying.
	if st.Services[0].Spec.Task.Container.Secrets[0].Name != "db-password" {
		t.Error("QualifyRefs changed its argument")
	}

	delete(read, "/srv/shop/db/password.txt")
	st2, _ := ParseFiles(files)
	err = ResolveValues(&st2, func(p string) ([]byte, error) { return nil, fmt.Errorf("open %s: no such file", p) }, func(string) (string, bool) { return "", false })
	for _, want := range []string{"warren.yaml:2: secrets.db-password.file: open /srv/shop/db/password.txt: no such file", "warren.yaml:7: configs.motd.environment: variable MOTD is not set"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
}
