package main

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/warrenhq/warren/controlplane/api"
)

func TestParseSecretRef(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want api.SecretRef
		err  string
	}{
		{in: "db", want: api.SecretRef{Name: "db"}},
		{in: "source=db", want: api.SecretRef{Name: "db"}},
		{in: "source=db,target=/etc/db.pw,uid=33,gid=44,mode=0440", want: api.SecretRef{Name: "db", Target: "/etc/db.pw", UID: 33, GID: 44, Mode: 0o440}},
		{in: "src=db,dst=/x,mode=400,restart=true", want: api.SecretRef{Name: "db", Target: "/x", Mode: 0o400, Restart: true}},
		{in: "", err: "needs a name"},
		{in: "target=/x", err: "source=NAME is required"},
		{in: "source=db,uid=-1", err: `uid "-1": must be a number`},
		{in: "source=db,mode=0999", err: `mode "0999": must be octal`},
		{in: "source=db,mode=1777", err: `mode "1777": must be octal`},
		{in: "source=db,restart=maybe", err: `restart "maybe"`},
		{in: "source=db,owner=me", err: `unknown key "owner"`},
		{in: "source=db,ro", err: `"ro" is not KEY=VALUE`},
	} {
		got, err := parseSecretRef("--secret", tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "--secret") {
				t.Errorf("%q: err %v, want one naming --secret and %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestServiceCreateSecretFlags(t *testing.T) {
	spec, err := parseCreate(t, "--image", "x", "--secret", "db", "--secret", "source=tls,target=/etc/tls.key,mode=0400",
		"--config", "source=app.conf,target=/etc/app.conf,uid=1000")
	if err != nil {
		t.Fatal(err)
	}
	c := spec.Task.Container
	want := []api.SecretRef{{Name: "db"}, {Name: "tls", Target: "/etc/tls.key", Mode: 0o400}}
	if !reflect.DeepEqual(c.Secrets, want) {
		t.Fatalf("secrets = %+v, want %+v", c.Secrets, want)
	}
	if len(c.Configs) != 1 || c.Configs[0] != (api.SecretRef{Name: "app.conf", Target: "/etc/app.conf", UID: 1000}) {
		t.Fatalf("configs = %+v", c.Configs)
	}
	if _, err := parseCreate(t, "--image", "x", "--secret", "source=db,mode=abc"); err == nil {
		t.Fatal("bad mode accepted")
	}
}

func TestServiceUpdateSecretAddRm(t *testing.T) {
	base := api.ServiceSpec{Name: "web", Task: api.TaskSpec{Container: api.ContainerSpec{
		Image:   "x",
		Secrets: []api.SecretRef{{ID: "1", Name: "db-v1", Target: "/run/secrets/db", Mode: 0o444}, {ID: "2", Name: "tls", Target: "/run/secrets/tls"}},
		Configs: []api.SecretRef{{ID: "3", Name: "app", Target: "/app"}},
	}}}
	for _, tc := range []struct {
		args        []string
		wantSecrets []string // name@target
		wantConfigs []string
		err         string
	}{
		// Swarm's rotation: swap the secret behind one target.
		{args: []string{"--secret-rm", "db-v1", "--secret-add", "source=db-v2,target=/run/secrets/db"},
			wantSecrets: []string{"tls@/run/secrets/tls", "db-v2@/run/secrets/db"}, wantConfigs: []string{"app@/app"}},
		{args: []string{"--config-rm", "app"}, wantSecrets: []string{"db-v1@/run/secrets/db", "tls@/run/secrets/tls"}},
		{args: []string{"--config-add", "app2"}, wantSecrets: []string{"db-v1@/run/secrets/db", "tls@/run/secrets/tls"}, wantConfigs: []string{"app@/app", "app2@"}},
		// Re-adding an object replaces its old mount.
		{args: []string{"--secret-add", "tls"}, wantSecrets: []string{"db-v1@/run/secrets/db", "tls@"}, wantConfigs: []string{"app@/app"}},
		{args: []string{"--secret", "only"}, wantSecrets: []string{"only@"}, wantConfigs: []string{"app@/app"}},
		{args: []string{"--secret-rm", "nope"}, err: `--secret-rm "nope": the service mounts no secret`},
	} {
		f := &serviceFlags{}
		fs := pflag.NewFlagSet("update", pflag.ContinueOnError)
		addServiceFlags(fs, f)
		addSecretUpdateFlags(fs, &f.refs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		got, err := applyFlags(base, f, flagSet(fs))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: err %v, want %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		names := func(rs []api.SecretRef) []string {
			var out []string
			for _, r := range rs {
				out = append(out, r.Name+"@"+r.Target)
			}
			return out
		}
		if s, c := names(got.Task.Container.Secrets), names(got.Task.Container.Configs); !reflect.DeepEqual(s, tc.wantSecrets) || !reflect.DeepEqual(c, tc.wantConfigs) {
			t.Errorf("%v: secrets %v configs %v, want %v %v", tc.args, s, c, tc.wantSecrets, tc.wantConfigs)
		}
	}
	if len(base.Task.Container.Secrets) != 2 {
		t.Fatal("applyFlags changed the spec it was given")
	}
}

func TestReadValueLimits(t *testing.T) {
	g := &globals{stdin: bytes.NewReader(bytes.Repeat([]byte{1}, 500<<10+1))}
	if _, err := readValue(g, api.KindSecret, "-"); err == nil || !strings.Contains(err.Error(), "500 KiB") {
		t.Fatalf("oversize secret on stdin: %v", err)
	}
	g.stdin = bytes.NewReader(bytes.Repeat([]byte{1}, 500<<10+1))
	if b, err := readValue(g, api.KindConfig, "-"); err != nil || len(b) != 500<<10+1 {
		t.Fatalf("config of 500 KiB+1: %d bytes, %v (configs may be 1000 KiB)", len(b), err)
	}
	g.stdin = strings.NewReader("pw")
	if b, err := readValue(g, api.KindSecret, "-"); err != nil || string(b) != "pw" {
		t.Fatalf("stdin = %q, %v", b, err)
	}
	if _, err := readValue(g, api.KindSecret, "/nonexistent/file"); err == nil {
		t.Fatal("missing file accepted")
	}
}
