package compose

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/stack"
)

// TestConvertObjects maps Compose secrets, configs and named volumes onto
// the stack's objects and the services' mounts of them.
func TestConvertObjects(t *testing.T) {
	withFiles := Options{ReadFile: os.ReadFile}
	for _, tc := range []struct {
		name    string
		files   map[string]string
		env     []string
		opts    *Options
		wantErr string
		warn    string
		check   func(t *testing.T, r *Result)
	}{
		{name: "secret from a file, short syntax", files: map[string]string{
			"compose.yaml":    "services: {db: {image: pg, secrets: [db-password]}}\nsecrets: {db-password: {file: ./db/password.txt}}",
			"db/password.txt": "s3cret\n",
		}, check: func(t *testing.T, r *Result) {
			want := []stack.Object{{Name: "db-password", Spec: api.SecretSpec{Name: "shop_db-password"}, Data: []byte("s3cret\n")}}
			got := r.Stack.Secrets
			if len(got) == 1 {
				got[0].Source = ""
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("secrets %+v, want %+v", got, want)
			}
			refs := svc(t, r, "db").Task.Container.Secrets
			if !reflect.DeepEqual(refs, []api.SecretRef{{Name: "shop_db-password", Target: "/run/secrets/db-password"}}) {
				t.Errorf("mount %+v: Compose puts a secret at /run/secrets/<key>", refs)
			}
		}},
		{name: "secret from the environment, long syntax", env: []string{"PGPASS=from-env"}, files: map[string]string{
			"compose.yaml": `services:
  db:
    image: pg
    secrets:
      - {source: pw, target: pg-pass, uid: "999", gid: "999", mode: 0400}
secrets:
  pw: {environment: PGPASS, labels: {team: db}}`,
		}, check: func(t *testing.T, r *Result) {
			o := r.Stack.Secrets[0]
			if string(o.Data) != "from-env" || o.Spec.Labels["team"] != "db" || o.Source != "environment PGPASS" {
				t.Errorf("secret %+v", o)
			}
			refs := svc(t, r, "db").Task.Container.Secrets
			want := []api.SecretRef{{Name: "shop_pw", Target: "/run/secrets/pg-pass", UID: 999, GID: 999, Mode: 0o400}}
			if !reflect.DeepEqual(refs, want) {
				t.Errorf("mount %+v, want %+v", refs, want)
			}
		}},
		{name: "environment variable unset", files: map[string]string{
			"compose.yaml": "services: {db: {image: pg, secrets: [pw]}}\nsecrets: {pw: {environment: NOPE_UNSET}}",
		}, wantErr: "compose.yaml: secrets.pw.environment: variable NOPE_UNSET is not set"},
		{name: "secret file missing", files: map[string]string{
			"compose.yaml": "services: {db: {image: pg, secrets: [pw]}}\nsecrets: {pw: {file: ./nope.txt}}",
		}, wantErr: "compose.yaml: secrets.pw.file: open "},
		{name: "no file reader: refused, not read", opts: &Options{}, files: map[string]string{
			"compose.yaml": "services: {db: {image: pg, secrets: [pw]}}\nsecrets: {pw: {file: ./pw.txt}}", "pw.txt": "x",
		}, wantErr: "secrets.pw.file"},
		{name: "external secret: used by its name, not created", files: map[string]string{
			"compose.yaml": "services: {web: {image: nginx, secrets: [tls]}}\nsecrets: {tls: {external: true}}",
		}, check: func(t *testing.T, r *Result) {
			if o := r.Stack.Secrets[0]; !o.External || o.Spec.Name != "tls" || o.Data != nil {
				t.Errorf("secret %+v", o)
			}
			if refs := svc(t, r, "web").Task.Container.Secrets; refs[0].Name != "tls" {
				t.Errorf("mount %+v", refs)
			}
		}},
		{name: "config inline and from a file, default and given targets", files: map[string]string{
			"compose.yaml": `services:
  web:
    image: nginx
    configs:
      - site
      - {source: motd, target: /etc/motd, mode: 0440}
configs:
  site: {file: ./site.conf}
  motd: {content: "hello $${USER}"}`,
			"site.conf": "server {}",
		}, check: func(t *testing.T, r *Result) {
			if len(r.Stack.Configs) != 2 || string(r.Stack.Configs[0].Data) != "hello ${USER}" || string(r.Stack.Configs[1].Data) != "server {}" {
				t.Errorf("configs %+v", r.Stack.Configs)
			}
			want := []api.SecretRef{{Name: "shop_site", Target: "/site"}, {Name: "shop_motd", Target: "/etc/motd", Mode: 0o440}}
			if refs := svc(t, r, "web").Task.Container.Configs; !reflect.DeepEqual(refs, want) {
				t.Errorf("mounts %+v, want %+v", refs, want)
			}
		}},
		{name: "a secret no top-level entry defines", files: map[string]string{
			"compose.yaml": "services: {db: {image: pg, secrets: [nope]}}",
		}, wantErr: "nope"},
		{name: "secret driver noted", files: map[string]string{
			"compose.yaml": "services: {db: {image: pg, secrets: [pw]}}\nsecrets: {pw: {environment: HOME, driver: vault}}",
		}, env: []string{"HOME=/root"}, warn: "project: ignoring unsupported options: secrets.pw.driver"},
		{name: "named volume, nocopy", files: map[string]string{
			"compose.yaml": "services: {db: {image: pg, volumes: [{type: volume, source: data, target: /var/lib/pg, volume: {nocopy: true}}]}}\nvolumes: {data: {labels: {backup: daily}}}",
		}, check: func(t *testing.T, r *Result) {
			want := []stack.Volume{{Name: "data", Spec: api.VolumeSpec{Name: "shop_data", Driver: api.LocalDriver, Labels: map[string]string{"backup": "daily"}}}}
			if !reflect.DeepEqual(r.Stack.Volumes, want) {
				t.Errorf("volumes %+v, want %+v", r.Stack.Volumes, want)
			}
			want2 := []api.Mount{{Type: api.MountVolume, Source: "shop_data", Target: "/var/lib/pg", NoCopy: true}}
			if m := svc(t, r, "db").Task.Container.Mounts; !reflect.DeepEqual(m, want2) {
				t.Errorf("mounts %+v, want %+v", m, want2)
			}
			if len(r.Warnings) != 0 {
				t.Errorf("warnings %q: a named volume is now a cluster volume", r.Warnings)
			}
		}},
		{name: "volume of a plugin driver keeps its options", files: map[string]string{
			"compose.yaml": "services: {db: {image: pg, volumes: [\"data:/d\"]}}\nvolumes: {data: {driver: sshfs, driver_opts: {host: 10.0.0.1, path: /x}}}",
		}, check: func(t *testing.T, r *Result) {
			if v := r.Stack.Volumes[0].Spec; v.Driver != "sshfs" || v.Opts["host"] != "10.0.0.1" || v.Opts["path"] != "/x" {
				t.Errorf("volume %+v", v)
			}
		}},
		{name: "Docker's local driver options are refused, not ignored", files: map[string]string{
			"compose.yaml": "services: {db: {image: pg, volumes: [\"data:/d\"]}}\nvolumes: {data: {driver_opts: {type: none, o: bind, device: /srv/x}}}",
		}, wantErr: "compose.yaml: volumes.data.driver_opts: the local driver takes no options"},
		{name: "external volume keeps its name", files: map[string]string{
			"compose.yaml": "services: {db: {image: pg, volumes: [\"data:/d\"]}}\nvolumes: {data: {external: true, name: pgdata}}",
		}, check: func(t *testing.T, r *Result) {
			if v := r.Stack.Volumes[0]; !v.External || v.Spec.Name != "pgdata" {
				t.Errorf("volume %+v", v)
			}
			if m := svc(t, r, "db").Task.Container.Mounts[0]; m.Source != "pgdata" {
				t.Errorf("mount %+v", m)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := withFiles
			if tc.opts != nil {
				o = *tc.opts
			}
			r, err := load(t, tc.files, tc.env, o)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.warn != "" && !strings.Contains(strings.Join(r.Warnings, "\n"), tc.warn) {
				t.Errorf("warnings %q, want %q", r.Warnings, tc.warn)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}
