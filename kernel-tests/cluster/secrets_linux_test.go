//go:build linux

package clustertest

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/kernel-tests/ktest"
	"github.com/warrenhq/warren/runtime"
)

// cleanSecretFS unmounts a node's secret tmpfs, which outlives warren by
// design (a restarted agent finds its tasks' files there).
func cleanSecretFS(t *testing.T, nodeID string) {
	if err := runtime.UnmountSecretFS(filepath.Join("/run/warren", nodeID, "secrets")); err != nil {
		t.Error(err)
	}
	_ = os.Remove(filepath.Join("/run/warren", nodeID))
}

// filesHolding lists the files under dir that hold any marker raw, in
// base64 or in hex.
func filesHolding(t *testing.T, dir string, markers ...string) []string {
	t.Helper()
	var forms [][]byte
	for _, m := range markers {
		forms = append(forms, []byte(m), []byte(base64.StdEncoding.EncodeToString([]byte(m))),
			[]byte(base64.RawStdEncoding.EncodeToString([]byte(m))), []byte(hex.EncodeToString([]byte(m))))
	}
	var out []string
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n++
		for _, f := range forms {
			if bytes.Contains(b, f) {
				out = append(out, p)
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	if n == 0 {
		t.Fatalf("no files under %s: the search would find nothing anyway", dir)
	}
	return out
}

func fileHas(t *testing.T, p, s string) bool {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(b, []byte(s))
}

// mountFS returns the filesystem type of the mount at target in a
// process's mount namespace, from /proc/<pid>/mountinfo.
func mountFS(pid int, target string) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return "", err
	}
	fstype := ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[4] != target {
			continue
		}
		for i, x := range f {
			if x == "-" && i+1 < len(f) {
				fstype = f[i+1] // the last mount at target wins
			}
		}
	}
	if fstype == "" {
		return "", fmt.Errorf("no mount at %s in /proc/%d/mountinfo", target, pid)
	}
	return fstype, nil
}

// TestSecrets follows a secret and a config from the CLI into one task on
// a worker: mounted from tmpfs with the owner and mode asked for, absent
// from the node that runs no task using it, rotated in place in the
// running task, and in no file of any data dir.
func TestSecrets(t *testing.T) {
	ktest.Binary(t, "ctr")
	c := newCluster(t, 2)
	h1, h2 := c.hosts[0], c.hosts[1]
	c.init(h1)
	c.join(h2, h1, strings.TrimSpace(h1.mustCLI("cluster", "join-token", "worker", "-q")))
	for _, h := range c.hosts {
		id := h.nodeID(t)
		t.Cleanup(func() { cleanSecretFS(t, id) })
	}
	m1, m2, conf := ktest.RandomMarker(t), ktest.RandomMarker(t), ktest.RandomMarker(t)

	// Bad input is refused with the reason, and nothing is stored.
	for _, bad := range []struct{ args []string }{
		{[]string{"secret", "create", "a/b", ktest.ValueFile(t, "x")}},
		{[]string{"secret", "create", "a..b", ktest.ValueFile(t, "x")}},
		{[]string{"secret", "create", "big", ktest.ValueFile(t, strings.Repeat("x", 500<<10+1))}},
	} {
		if out, err := h1.cli(bad.args...); err == nil {
			t.Fatalf("warren %v accepted: %s", bad.args, out)
		}
	}
	h1.mustCLI("secret", "create", "db", ktest.ValueFile(t, m1))
	h1.mustCLI("config", "create", "app.conf", ktest.ValueFile(t, conf))
	var infos []client.SecretInfo
	if err := h1.cliJSON(&infos, "secret", "ls"); err != nil || len(infos) != 1 {
		t.Fatalf("secret ls = %+v, %v (the refused creates must store nothing)", infos, err)
	}
	if out := h1.mustCLI("secret", "inspect", "db"); strings.Contains(out, m1) {
		t.Fatal("secret inspect shows the value")
	}
	if out := h1.mustCLI("config", "inspect", "app.conf"); !strings.Contains(out, base64.StdEncoding.EncodeToString([]byte(conf))) {
		t.Fatalf("config inspect does not show the value:\n%s", out)
	}

	h1.mustCLI("image", "load", "-i", c.image)
	if out, err := h1.cli("service", "create", "bad", "--image", demoRef, "--secret", "nope", "-d"); err == nil || !strings.Contains(err.Error(), `secret "nope" not found`) {
		t.Fatalf("a service with an unknown secret: %v %s", err, out)
	}
	h1.mustCLI("service", "create", "sec", "--image", demoRef, "--constraint", "node.role==worker",
		"--secret", "source=db,uid=1000,gid=1001,mode=0440", "--config", "source=app.conf,target=/etc/app.conf", "--timeout", "2m")
	tk := c.waitRunning(h1, "sec", 1, 90*time.Second, nil)[0]
	if c.hostOfNode(t, tk.NodeID) != h2 {
		t.Fatalf("task on %s, want the worker h2", tk.NodeID)
	}
	read := func(p string) (string, error) { return h2.exec(t, tk, "cat", p) }
	if got, err := read("/run/secrets/db"); err != nil || got != m1 {
		t.Fatalf("task reads /run/secrets/db = %q, %v; want the secret", got, err)
	}
	if got, err := h2.exec(t, tk, "stat", "/run/secrets/db"); err != nil || strings.TrimSpace(got) != "uid=1000 gid=1001 mode=0440" {
		t.Fatalf("stat /run/secrets/db = %q, %v", got, err)
	}
	if got, err := read("/etc/app.conf"); err != nil || got != conf {
		t.Fatalf("task reads /etc/app.conf = %q, %v", got, err)
	}
	if got, err := h2.exec(t, tk, "stat", "/etc/app.conf"); err != nil || strings.TrimSpace(got) != "uid=0 gid=0 mode=0444" {
		t.Fatalf("stat /etc/app.conf = %q, %v (Swarm's defaults)", got, err)
	}
	for _, target := range []string{"/run/secrets", "/etc/app.conf"} {
		if fstype, err := mountFS(tk.Status.PID, target); err != nil || fstype != "tmpfs" {
			t.Fatalf("%s in the task is on %q (%v), want tmpfs", target, fstype, err)
		}
	}

	// What each agent received: the node running the task holds the
	// secret's ID in its cached assignments; the other never saw it.
	var dbs []client.SecretInfo
	if err := h1.cliJSON(&dbs, "secret", "inspect", "db"); err != nil || len(dbs) != 1 {
		t.Fatalf("secret inspect db: %+v, %v", dbs, err)
	}
	db := dbs[0]
	eventually(t, "h2's agent cache lists the secret it got", 10*time.Second, func() error {
		if !fileHas(t, filepath.Join(h2.dataDir, "agent.db"), db.ID) {
			return fmt.Errorf("secret %s not in h2's agent.db", db.ID)
		}
		return nil
	})
	if fileHas(t, filepath.Join(h1.dataDir, "agent.db"), db.ID) {
		t.Fatal("h1 runs no task using the secret, yet its agent received it")
	}

	// A second service takes the Swarm way: restart=true rolls its task.
	h1.mustCLI("service", "create", "rst", "--image", demoRef, "--secret", "source=db,restart=true", "--timeout", "2m")
	old := c.waitRunning(h1, "rst", 1, 90*time.Second, nil)[0]

	if out, err := h1.cli("secret", "rm", "db"); err == nil || !strings.Contains(err.Error(), "in use by service rst, sec") {
		t.Fatalf("rm of a secret in use: %v %s", err, out)
	}

	// Rotation in place: the same container sees the new value.
	h1.mustCLI("secret", "update", "db", ktest.ValueFile(t, m2))
	eventually(t, "the running task reads the new value", 30*time.Second, func() error {
		got, err := read("/run/secrets/db")
		if err != nil || got != m2 {
			return fmt.Errorf("/run/secrets/db = %q, %v", got, err)
		}
		return nil
	})
	if now := c.waitRunning(h1, "sec", 1, 30*time.Second, nil)[0]; now.ID != tk.ID || now.Status.ContainerID != tk.Status.ContainerID || now.Status.PID != tk.Status.PID {
		t.Fatalf("the task was replaced (%s pid %d → %s pid %d); want an in-place update", tk.ID, tk.Status.PID, now.ID, now.Status.PID)
	}

	eventually(t, "restart=true replaced the task of rst, which reads the new value", 90*time.Second, func() error {
		ts, err := h1.tasks("rst")
		if err != nil {
			return err
		}
		run := runningTasks(ts)
		if len(run) != 1 || run[0].ID == old.ID {
			return fmt.Errorf("rst tasks: %s", describeTasks(run))
		}
		got, err := c.hostOfNode(t, run[0].NodeID).exec(t, run[0], "cat", "/run/secrets/db")
		if err != nil || got != m2 {
			return fmt.Errorf("new task reads %q, %v", got, err)
		}
		return nil
	})

	// The leader audited the writes (and the marker grep below covers the
	// audit log too, which is in the data dir).
	for _, verb := range []string{"POST /v1/secrets", "POST /v1/configs", "POST /v1/services", "POST /v1/secrets/{ref}/update"} {
		if !fileHas(t, filepath.Join(h1.dataDir, "audit.log"), `"verb":"`+verb+`"`) {
			t.Errorf("h1's audit log has no %s line", verb)
		}
	}

	for _, h := range c.hosts {
		if got := filesHolding(t, h.dataDir, m1, m2); len(got) > 0 {
			t.Errorf("%s: the secret is in clear in %v", h.name, got)
		}
	}

	// The task stops: its files leave the node's tmpfs.
	dir := filepath.Join("/run/warren", h2.nodeID(t), "secrets", tk.ID)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the task's secret dir %s: %v", dir, err)
	}
	h1.mustCLI("service", "rm", "sec", "rst")
	eventually(t, "the stopped task's secret files are gone", 30*time.Second, func() error {
		if _, err := os.Stat(dir); err == nil {
			return fmt.Errorf("%s still exists", dir)
		}
		return nil
	})
	h1.mustCLI("secret", "rm", "db")
}

// TestAutolockRestart: a manager initialised with --autolock comes back
// from a restart locked — every call answers "locked", its files hold no
// usable KEK — and serves again once unlocked with the key.
func TestAutolockRestart(t *testing.T) {
	c := newCluster(t, 1)
	h := c.hosts[0]
	c.init(h, "--autolock")
	id := h.nodeID(t)
	t.Cleanup(func() { cleanSecretFS(t, id) })
	key := strings.TrimSpace(h.mustCLI("cluster", "unlock-key", "-q"))
	if !strings.HasPrefix(key, "WRNKEY-1-") {
		t.Fatalf("unlock key %q", key)
	}
	if b, _ := os.ReadFile(h.logPath); !strings.Contains(string(b), key) {
		t.Fatal("cluster init did not print the unlock key")
	}
	marker := ktest.RandomMarker(t)
	h.mustCLI("secret", "create", "db", ktest.ValueFile(t, marker))

	h.stop(syscall.SIGTERM)
	// The data dir as a thief would copy it.
	if _, err := os.Stat(filepath.Join(h.dataDir, "ca.kek")); !os.IsNotExist(err) {
		t.Fatalf("ca.kek on a locked manager's disk: %v", err)
	}
	if got := filesHolding(t, h.dataDir, marker); len(got) > 0 {
		t.Fatalf("secret in clear in %v", got)
	}

	h.start(h.args...)
	eventually(t, "the restarted manager answers locked", 30*time.Second, func() error {
		_, err := h.cli("secret", "ls")
		if err == nil || !strings.Contains(err.Error(), "locked: run warren cluster unlock") {
			return fmt.Errorf("secret ls on a locked manager: %v", err)
		}
		return nil
	})
	if _, err := h.cli("node", "ls"); err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("node ls on a locked manager: %v", err)
	}
	unlock := func(k string) error {
		cmd := exec.Command(h.c.bin, "--data-dir", h.dataDir, "cluster", "unlock")
		cmd.Stdin = strings.NewReader(k + "\n")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	}
	if err := unlock("WRNKEY-1-" + strings.Repeat("A", 52)); err == nil {
		t.Fatal("a wrong unlock key was accepted")
	}
	if err := unlock(key); err != nil {
		t.Fatal(err)
	}
	c.waitReady(h, h, 60*time.Second)
	var infos []client.SecretInfo
	if err := h.cliJSON(&infos, "secret", "ls"); err != nil || len(infos) != 1 {
		t.Fatalf("secret ls after unlock: %+v, %v", infos, err)
	}
}
