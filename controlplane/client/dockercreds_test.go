package client

import (
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
)

// writeHelper puts an executable docker-credential-NAME into dir: a shell
// script implementing `get` with body (stdin is the server address).
func writeHelper(t *testing.T, dir, name, body string) {
	t.Helper()
	script := "#!/bin/sh\n[ \"$1\" = get ] || { echo \"unexpected action $1\" >&2; exit 2; }\nread -r server\n" + body + "\n"
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-"+name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestDockerConfigCredential(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh to run credential helpers with")
	}
	cfgDir, bin := t.TempDir(), t.TempDir()
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	// "good" answers per server address, so the test sees what it was asked.
	writeHelper(t, bin, "good", `case "$server" in
  reg.lan:5000) echo '{"ServerURL":"reg.lan:5000","Username":"helper-user","Secret":"helper-pw"}' ;;
  https://index.docker.io/v1/) echo '{"ServerURL":"https://index.docker.io/v1/","Username":"hub-user","Secret":"hub-pw"}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac`)
	writeHelper(t, bin, "broken", `echo "keychain locked" >&2; exit 3`)
	writeHelper(t, bin, "token", `echo '{"ServerURL":"'"$server"'","Username":"<token>","Secret":"refresh"}'`)
	writeHelper(t, bin, "garbage", `echo "s3cret"`)
	auth := base64.StdEncoding.EncodeToString([]byte("file-user:file-pw"))
	for _, tc := range []struct {
		name, config, host string
		want               api.RegistryCredential
		err                []string // substrings of the error; nil: no error
		none               bool     // the error is ErrNoDockerCredential
	}{
		{name: "credHelpers for the host", host: "reg.lan:5000",
			config: `{"credHelpers":{"reg.lan:5000":"good"}}`,
			want:   api.RegistryCredential{Username: "helper-user", Password: "helper-pw"}},
		{name: "Docker Hub asks for the index URL", host: "docker.io",
			config: `{"credHelpers":{"index.docker.io":"good"}}`,
			want:   api.RegistryCredential{Username: "hub-user", Password: "hub-pw"}},
		{name: "credHelpers before auths", host: "reg.lan:5000",
			config: `{"credHelpers":{"reg.lan:5000":"good"},"auths":{"reg.lan:5000":{"auth":"` + auth + `"}}}`,
			want:   api.RegistryCredential{Username: "helper-user", Password: "helper-pw"}},
		{name: "credsStore", host: "reg.lan:5000",
			config: `{"credsStore":"good","auths":{"reg.lan:5000":{}}}`,
			want:   api.RegistryCredential{Username: "helper-user", Password: "helper-pw"}},
		{name: "credsStore without the host falls back to auths", host: "other:5000",
			config: `{"credsStore":"good","auths":{"other:5000":{"auth":"` + auth + `"}}}`,
			want:   api.RegistryCredential{Username: "file-user", Password: "file-pw"}},
		{name: "credHelpers without the host is the answer", host: "other:5000",
			config: `{"credHelpers":{"other:5000":"good"},"auths":{"other:5000":{"auth":"` + auth + `"}}}`,
			err:    []string{"other:5000", "docker-credential-good"}, none: true},
		{name: "credHelpers of another host is not asked", host: "other:5000",
			config: `{"credHelpers":{"reg.lan:5000":"broken"},"auths":{"other:5000":{"auth":"` + auth + `"}}}`,
			want:   api.RegistryCredential{Username: "file-user", Password: "file-pw"}},
		{name: "a missing helper says so", host: "reg.lan:5000",
			config: `{"credHelpers":{"reg.lan:5000":"absent"}}`,
			err:    []string{"docker-credential-absent", "reg.lan:5000", "not found in $PATH", `credHelpers["reg.lan:5000"]`}},
		{name: "a missing store says so", host: "reg.lan:5000",
			config: `{"credsStore":"absent"}`,
			err:    []string{"docker-credential-absent", "reg.lan:5000", "not found in $PATH", "credsStore"}},
		{name: "a failing helper is named with the host", host: "reg.lan:5000",
			config: `{"credHelpers":{"reg.lan:5000":"broken"}}`,
			err:    []string{"docker-credential-broken", "reg.lan:5000", "exit status 3", "keychain locked"}},
		{name: "an identity token is refused", host: "reg.lan:5000",
			config: `{"credsStore":"token"}`,
			err:    []string{"docker-credential-token", "identity token"}},
		{name: "output that is not JSON is not echoed", host: "reg.lan:5000",
			config: `{"credsStore":"garbage"}`,
			err:    []string{"docker-credential-garbage", "not the protocol's JSON"}},
		{name: "nothing for the host", host: "ghcr.io",
			config: `{"auths":{"reg.lan:5000":{"auth":"` + auth + `"}}}`,
			err:    []string{"ghcr.io"}, none: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := DockerConfig{Dir: cfgDir}.Credential(tc.host)
			if tc.err == nil {
				if err != nil || got != tc.want {
					t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("got %+v, want an error", got)
			}
			for _, s := range tc.err {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "refresh") {
				t.Errorf("error %q shows what the helper answered", err)
			}
			if errors.Is(err, ErrNoDockerCredential) != tc.none {
				t.Errorf("error %q: errors.Is(ErrNoDockerCredential) = %v, want %v", err, !tc.none, tc.none)
			}
		})
	}
}
