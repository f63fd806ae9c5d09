package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// DockerConfig is where the docker CLI keeps its logins: the file, and how
// a credential helper is run (tests give their own PATH and timeout).
type DockerConfig struct {
	// Dir holds config.json; empty: $DOCKER_CONFIG, else ~/.docker.
	Dir string
	// HelperTimeout bounds one `docker-credential-NAME get` (default 30s):
	// a helper that asks for a keychain password must not hang the CLI.
	HelperTimeout time.Duration
	// LookPath finds a helper's executable; nil: exec.LookPath.
	LookPath func(file string) (string, error)
}

// ErrNoDockerCredential is returned (wrapped) when the docker config has
// nothing for a host.
var ErrNoDockerCredential = errors.New("no credential")

// Credential is the docker CLI's credential for host, found as the docker
// CLI finds it: the host's credHelpers entry, else credsStore, else the
// auths entry. A helper is `docker-credential-NAME get` (the docker
// credential helper protocol: the server address on stdin, JSON
// {ServerURL, Username, Secret} on stdout).
func (d DockerConfig) Credential(host string) (api.RegistryCredential, error) {
	dir := d.Dir
	if dir == "" {
		dir = os.Getenv("DOCKER_CONFIG")
	}
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".docker")
	}
	path := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return api.RegistryCredential{}, fmt.Errorf("%w for %s: %w", ErrNoDockerCredential, host, err)
	}
	var cfg struct {
		Auths map[string]struct {
			Auth string `json:"auth"`
		} `json:"auths"`
		CredsStore  string            `json:"credsStore"`
		CredHelpers map[string]string `json:"credHelpers"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return api.RegistryCredential{}, fmt.Errorf("%s: %w", path, err)
	}
	keys := dockerConfigKeys(host)
	for _, k := range keys {
		if name := cfg.CredHelpers[k]; name != "" {
			// A host with its own helper is that helper's alone, as for
			// docker: its "not found" is the answer, not a reason to look
			// in auths.
			return d.runHelper(name, host, fmt.Sprintf("credHelpers[%q] in %s", k, path))
		}
	}
	if cfg.CredsStore != "" {
		c, err := d.runHelper(cfg.CredsStore, host, "credsStore in "+path)
		if !errors.Is(err, ErrNoDockerCredential) {
			return c, err
		}
		// docker login with a store still leaves an empty auths entry,
		// and a file written by hand may hold the value there.
	}
	for _, k := range keys {
		a, ok := cfg.Auths[k]
		if !ok || a.Auth == "" {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(a.Auth)
		if err != nil {
			return api.RegistryCredential{}, fmt.Errorf("%s: auths[%q]: not base64", path, k)
		}
		u, p, ok := strings.Cut(string(raw), ":")
		if !ok {
			return api.RegistryCredential{}, fmt.Errorf("%s: auths[%q]: not user:password", path, k)
		}
		return api.RegistryCredential{Username: u, Password: p}, nil
	}
	return api.RegistryCredential{}, fmt.Errorf("%w for %s in %s", ErrNoDockerCredential, host, path)
}

// dockerConfigKeys are the names the docker CLI files host's login
// under: Docker Hub's under its old index URL, others under host[:port],
// sometimes with a scheme.
func dockerConfigKeys(host string) []string {
	keys := []string{host}
	if host == "docker.io" {
		keys = append(keys, "https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io")
	}
	return append(keys, "https://"+host)
}

// helperServerURL is what a helper is asked for: the address `docker
// login` stored the credential under.
func helperServerURL(host string) string {
	if host == "docker.io" {
		return "https://index.docker.io/v1/"
	}
	return host
}

// helperNotFound is the message the helpers of docker-credential-helpers
// print (with exit status 1) for a server they hold nothing for.
const helperNotFound = "credentials not found"

func (d DockerConfig) runHelper(name, host, from string) (api.RegistryCredential, error) {
	bin := "docker-credential-" + name
	look := d.LookPath
	if look == nil {
		look = exec.LookPath
	}
	path, err := look(bin)
	if err != nil {
		return api.RegistryCredential{}, fmt.Errorf("credential helper %s (%s) for %s: not found in $PATH: %w", bin, from, host, err)
	}
	timeout := d.HelperTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "get")
	cmd.Stdin = strings.NewReader(helperServerURL(host))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		// Helpers write their error to stdout (the protocol's channel);
		// stderr may have more. Neither holds the secret: get failed.
		msg := strings.TrimSpace(stdout.String() + " " + stderr.String())
		if strings.Contains(strings.ToLower(msg), helperNotFound) {
			return api.RegistryCredential{}, fmt.Errorf("%w for %s in credential helper %s", ErrNoDockerCredential, host, bin)
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("no answer in %s", timeout)
		}
		return api.RegistryCredential{}, fmt.Errorf("credential helper %s get %s: %w: %s", bin, host, err, truncate(msg, 200))
	}
	var out struct {
		ServerURL string
		Username  string
		Secret    string
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		// The output is not quoted: it could be the secret itself.
		return api.RegistryCredential{}, fmt.Errorf("credential helper %s get %s: answer is not the protocol's JSON: %w", bin, host, err)
	}
	if out.Secret == "" {
		return api.RegistryCredential{}, fmt.Errorf("credential helper %s get %s: answer has an empty Secret", bin, host)
	}
	if out.Username == "" || out.Username == "<token>" {
		// An identity token is an OAuth refresh token, which needs a token
		// exchange nodes do not make; say so rather than send it as a
		// password the registry would refuse with a 401.
		return api.RegistryCredential{}, fmt.Errorf("credential helper %s get %s: answer is an identity token, not a user and password", bin, host)
	}
	return api.RegistryCredential{Username: out.Username, Password: out.Secret}, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
