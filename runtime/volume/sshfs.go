package volume

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/warrenhq/warren/controlplane/api"
)

// SSHFSPlugin is the file name of the network driver this binary serves
// (dispatched on argv[0], like warren-cni).
const SSHFSPlugin = PluginPrefix + "sshfs"

// The sshfs driver mounts a directory of an SSH server with sshfs (FUSE)
// on the node a task lands on, so a multi-node volume follows its task. Its
// options:
//
//	host        the server (required)
//	path        the directory on the server (required)
//	user        login user (default root)
//	port        SSH port (default 22)
//	identity    private key file on the node (default: ssh's own)
//	known_hosts known_hosts file on the node; without it the server key is
//	            learnt at the first mount and pinned per volume
//	alive       seconds between keepalives (default 5); after three missed
//	            ones the connection counts as dead and file operations fail
//	            instead of hanging
//
// The server's data is never deleted by `delete`: the directory belongs to
// the server's operator.

// sshfsOpts are the driver's options after defaults.
type sshfsOpts struct {
	host, path, user, port, identity, knownHosts string
	alive                                        int
}

func parseSSHFSOpts(o map[string]string) (sshfsOpts, error) {
	s := sshfsOpts{host: o["host"], path: o["path"], user: o["user"], port: o["port"],
		identity: o["identity"], knownHosts: o["known_hosts"], alive: 5}
	for k := range o {
		switch k {
		case "host", "path", "user", "port", "identity", "known_hosts", "alive":
		default:
			return s, fmt.Errorf("unknown option %q (known: host, path, user, port, identity, known_hosts, alive)", k)
		}
	}
	if s.host == "" || strings.ContainsAny(s.host, " @:/") && !strings.HasPrefix(s.host, "[") {
		return s, fmt.Errorf("option host: must be a host name or address, not %q", s.host)
	}
	if !strings.HasPrefix(s.path, "/") {
		return s, fmt.Errorf("option path: must be an absolute directory on the server, not %q", s.path)
	}
	for k, v := range map[string]string{"identity": s.identity, "known_hosts": s.knownHosts} {
		if v != "" && (!strings.HasPrefix(v, "/") || strings.ContainsAny(v, ",")) {
			return s, fmt.Errorf("option %s: must be an absolute file path without ',', not %q", k, v)
		}
	}
	if strings.ContainsAny(s.user, "@:, ") {
		return s, fmt.Errorf("option user: %q is not a user name", s.user)
	}
	if s.user == "" {
		s.user = "root"
	}
	if s.port == "" {
		s.port = "22"
	}
	if n, err := strconv.Atoi(s.port); err != nil || n < 1 || n > 65535 {
		return s, fmt.Errorf("option port: must be 1-65535, not %q", s.port)
	}
	if v, ok := o["alive"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 300 {
			return s, fmt.Errorf("option alive: must be 1-300 seconds, not %q", v)
		}
		s.alive = n
	}
	return s, nil
}

// sshfsArgs is the sshfs command line for a mount: BatchMode so it never
// waits for a password prompt, keepalives so a dead server is noticed,
// reconnect so the mount recovers by itself when the server returns, and
// allow_other so tasks running as their own users can use it.
func sshfsArgs(o sshfsOpts, target, stateDir string) []string {
	ssh := []string{
		"reconnect", "allow_other", "default_permissions",
		"BatchMode=yes", "ConnectTimeout=10",
		"ServerAliveInterval=" + strconv.Itoa(o.alive), "ServerAliveCountMax=3",
		"Port=" + o.port,
	}
	if o.identity != "" {
		ssh = append(ssh, "IdentityFile="+o.identity, "IdentitiesOnly=yes")
	}
	if o.knownHosts != "" {
		ssh = append(ssh, "UserKnownHostsFile="+o.knownHosts, "StrictHostKeyChecking=yes")
	} else {
		ssh = append(ssh, "UserKnownHostsFile="+filepath.Join(stateDir, "known_hosts"), "StrictHostKeyChecking=accept-new")
	}
	return []string{o.user + "@" + o.host + ":" + o.path, target, "-o", strings.Join(ssh, ",")}
}

// SSHFSMain is the plugin's main: argv[1] is the operation, the Request is
// on stdin; it answers on stdout and returns the exit status.
func SSHFSMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fail := func(format string, a ...any) int {
		_ = json.NewEncoder(stdout).Encode(Response{Version: Version, Error: fmt.Sprintf(format, a...)})
		return 1
	}
	if len(args) < 2 {
		return fail("usage: %s capabilities|create|delete|attach|mount|unmount < request.json", SSHFSPlugin)
	}
	op := args[1]
	var r Request
	if op != "capabilities" {
		if err := json.NewDecoder(stdin).Decode(&r); err != nil {
			return fail("%s: request: %v", op, err)
		}
	}
	switch op {
	case "capabilities":
		if _, err := exec.LookPath("sshfs"); err != nil {
			return fail("sshfs is not installed on this node: %v", err)
		}
		_ = json.NewEncoder(stdout).Encode(Response{Version: Version, Capabilities: Capabilities{
			Scope: api.ScopeMultiNode, Access: []api.VolumeAccess{api.AccessSingleWriter, api.AccessMultiReader, api.AccessMultiWriter}}})
		return 0
	case "create", "attach", "delete":
		if _, err := parseSSHFSOpts(r.Opts); err != nil {
			return fail("volume %s: %v", r.Name, err)
		}
		return 0
	case "mount":
		o, err := parseSSHFSOpts(r.Opts)
		if err != nil {
			return fail("volume %s: %v", r.Name, err)
		}
		if r.Target == "" || !filepath.IsAbs(r.Target) {
			return fail("volume %s: target %q must be an absolute path", r.Name, r.Target)
		}
		if ok, err := isMountpoint(r.Target); err == nil && ok {
			return 0 // already mounted: idempotent
		}
		if r.StateDir != "" {
			_ = os.MkdirAll(r.StateDir, 0o700)
		}
		// sshfs forks into the background once the mount is up; its exit
		// status says whether it came up. The caller's timeout bounds it.
		cmd := exec.Command("sshfs", sshfsArgs(o, r.Target, r.StateDir)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fail("volume %s: sshfs %s@%s:%s: %v: %s", r.Name, o.user, o.host, o.path, err, strings.TrimSpace(out.String()))
		}
		return 0
	case "unmount":
		if r.Target == "" {
			return fail("volume %s: unmount needs a target", r.Name)
		}
		if err := detach(r.Target); err != nil {
			return fail("volume %s: %v", r.Name, err)
		}
		return 0
	}
	return fail("unknown operation %q", op)
}

// InstallPlugin links this binary into dir under the name of the sshfs
// plugin, so the Manager finds it like any other plugin.
func InstallPlugin(dir, self string) error {
	abs, err := filepath.Abs(self)
	if err != nil {
		return fmt.Errorf("install volume plugin: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("install volume plugin: %w", err)
	}
	dst := filepath.Join(dir, SSHFSPlugin)
	if cur, err := os.Readlink(dst); err == nil && cur == abs {
		return nil
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".%s-%d", SSHFSPlugin, os.Getpid()))
	_ = os.Remove(tmp)
	if err := os.Symlink(abs, tmp); err != nil {
		return fmt.Errorf("install volume plugin: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("install volume plugin: %w", err)
	}
	return nil
}
