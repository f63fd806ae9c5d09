//go:build linux

package reliability

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/ca"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/manager"
	"github.com/warrenhq/warren/kernel-tests/ktest"
)

// secretMounts are the node secret tmpfs mounts (runtime's "warren-secrets")
// in this mount namespace, the one place a value may be in clear: memory.
func secretMounts(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if ok && len(f) >= 5 && len(g) >= 2 && g[0] == "tmpfs" && g[1] == "warren-secrets" {
			out[f[4]] = true
		}
	}
	return out
}

// grepClear searches every regular file under roots for the markers in
// clear, base64 and hex, skipping the secret tmpfs mounts. It returns the
// files holding one, and how many files and bytes it read.
func grepClear(t *testing.T, roots []string, markers ...string) (hits []string, files int, bytesRead int64) {
	t.Helper()
	var forms [][]byte
	for _, m := range markers {
		forms = append(forms, []byte(m), []byte(base64.StdEncoding.EncodeToString([]byte(m))),
			[]byte(base64.RawStdEncoding.EncodeToString([]byte(m))), []byte(hex.EncodeToString([]byte(m))))
	}
	skip := secretMounts(t)
	for _, root := range roots {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) || os.IsPermission(err) && d != nil && !d.IsDir() {
					return nil // gone meanwhile (containerd's state moves)
				}
				return err
			}
			if d.IsDir() && skip[p] {
				return fs.SkipDir
			}
			if !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				if os.IsNotExist(err) {
					return nil
				}
				return err
			}
			files++
			bytesRead += int64(len(b))
			for _, f := range forms {
				if bytes.Contains(b, f) {
					hits = append(hits, p)
					break
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("walk %s: %v", root, err)
		}
	}
	return hits, files, bytesRead
}

// secretsGrep (T7): a secret and a config holding random markers are
// mounted by a running task; then every file of every node — its data dir
// (raft.db, snapshots, the agent's cache, certificates, audit log), its
// warren log and its containerd's root and state — is searched for the
// markers. The only place they may be is the task's tmpfs, which is
// memory; that it is there is checked too, so the search is for something
// that exists.
func secretsGrep(t *testing.T, c *cluster) {
	lead := c.leaderHost(t, 60*time.Second)
	sec, conf := ktest.RandomMarker(t), ktest.RandomMarker(t)
	lead.mustCLI("secret", "create", "rel-db", ktest.ValueFile(t, sec))
	lead.mustCLI("config", "create", "rel-conf", ktest.ValueFile(t, conf))
	lead.mustCLI("image", "load", "-i", c.image)
	lead.mustCLI("service", "create", "relsec", "--image", "warren/demo:v1", "--secret", "rel-db",
		"--config", "source=rel-conf,target=/etc/rel.conf", "--timeout", "2m")
	tk := c.waitRunning(lead, "relsec", 1, 120*time.Second, nil)[0]
	inMemory := filepath.Join("/run/warren", tk.NodeID, "secrets", tk.ID)
	mem, _, _ := grepClear(t, []string{inMemory}, sec)
	if len(mem) == 0 {
		// The walk skips the tmpfs root; the task's own dir under it is
		// searched directly here.
		t.Errorf("the task's tmpfs %s does not hold the secret: nothing was delivered, so the search below proves nothing", inMemory)
	}
	var roots []string
	for _, h := range c.hosts {
		roots = append(roots, h.dataDir, h.logPath, h.ctd.Dir)
	}
	hits, files, n := grepClear(t, roots, sec, conf)
	for _, h := range hits {
		t.Errorf("a marker is in clear in %s", h)
	}
	if files == 0 {
		t.Fatal("no file searched")
	}
	lead.mustCLI("service", "rm", "relsec")
	summary("T7", "secrets marker grep", t.Failed(), "secret and config markers searched in %d files, %d bytes (data dirs, warren logs, containerd root and state of %d nodes): %d in clear; in the task's tmpfs: %v",
		files, n, len(c.hosts), len(hits), len(mem) > 0)
}

// nodeClient is an HTTPS client from the clients' netns holding the
// certificate and key in dir (a node's certs dir, or a copy of it).
func nodeClient(t *testing.T, a *apiClient, dir string) *http.Client {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, ca.CertFile), filepath.Join(dir, ca.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	tr := a.hc.Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// callWith is call with a client of its own and, when set, the
// forwarded-for header only managers may send.
func (a *apiClient) callWith(hc *http.Client, method, addr, path string, in any, forwardedFor string) (int, string) {
	status, msg, _ := a.send(hc, method, addr, path, in, forwardedFor)
	return status, msg
}

// raftRefused dials the raft protocol (ALPN) with the certificate in dir
// and returns nil if the manager closes the connection within 5 s.
func (a *apiClient) raftRefused(addr, dir string) error {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, ca.CertFile), filepath.Join(dir, ca.KeyFile))
	if err != nil {
		return err
	}
	tr := a.hc.Transport.(*http.Transport)
	cfg := tr.TLSClientConfig.Clone()
	cfg.Certificates = []tls.Certificate{cert}
	cfg.NextProtos = []string{ca.ALPNRaft}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := tr.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	conn := tls.Client(raw, cfg)
	defer conn.Close()
	if err := conn.HandshakeContext(ctx); err != nil {
		return nil // refused in the handshake: refused all the same
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != ca.ALPNRaft {
		return fmt.Errorf("negotiated %q, not raft", p)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("the connection stayed open: raft accepted it")
	}
	return nil
}

func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	for _, f := range []string{ca.CertFile, ca.KeyFile} {
		b, err := os.ReadFile(filepath.Join(from, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// revokedNode (T7): a manager is demoted, stopped and removed with
// `node rm`. The certificates it held — the manager one from before the
// demotion and the worker one after — still verify against the CA, yet
// every running manager refuses them on each class of route: heartbeat,
// assignment watch, status report, certificate renewal, the manager routes,
// manager-ready, a request forwarded for an administrator, and the raft
// port (whose handshake admits any manager certificate). The same
// machine then joins again with a new worker token and a fresh data dir.
func revokedNode(t *testing.T, c *cluster, a *apiClient) {
	lead := c.leaderHost(t, 60*time.Second)
	h := c.others(lead)[0]
	oldID := h.nodeID(t)
	certs := filepath.Join(h.dataDir, manager.CertsDir)
	managerCerts := copyDir(t, certs)

	lead.mustCLI("node", "demote", oldID)
	eventually(t, h.name+" runs as a worker", 90*time.Second, func() error {
		id, err := manager.LoadIdentity(h.dataDir)
		if err != nil {
			return err
		}
		if id.Role != api.RoleWorker {
			return fmt.Errorf("%s's identity says %s", h.name, id.Role)
		}
		return nil
	})
	workerCerts := copyDir(t, certs)
	h.stop(syscall.SIGKILL)
	eventually(t, "node rm of the demoted node", 60*time.Second, func() error {
		_, err := lead.cli("node", "rm", "--force", oldID)
		return err
	})

	csr := func() []byte {
		key, err := ca.NewNodeKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ca.NewCSR(key, "renew", rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}()
	type probe struct {
		what, method, path string
		body               any
		header             string // forwarded-for
	}
	worker := []probe{
		{"heartbeat", http.MethodPost, "/v1/agent/register", api.NodeRegistration{Hostname: h.name}, ""},
		{"assignment watch", http.MethodGet, "/v1/agent/assignments?index=1&wait=5s", nil, ""},
		{"status report", http.MethodPost, "/v1/agent/status", api.StatusReport{}, ""},
		{"certificate renewal", http.MethodPost, "/v1/certs/renew", client.RenewRequest{CSRPEM: string(csr)}, ""},
		{"cluster read", http.MethodGet, "/v1/cluster", nil, ""},
	}
	mgr := append([]probe{
		{"manager route", http.MethodGet, "/v1/nodes", nil, ""},
		{"manager-ready", http.MethodPost, "/v1/agent/manager-ready", client.ManagerReadyRequest{}, ""},
		{"forwarded for an admin", http.MethodGet, "/v1/join-tokens", nil, "admin;op"},
	}, worker...)
	want := "node " + oldID + " was removed from the cluster; join again"
	checks, refused := 0, 0
	for _, set := range []struct {
		role   string
		hc     *http.Client
		probes []probe
	}{{"worker", nodeClient(t, a, workerCerts), worker}, {"manager", nodeClient(t, a, managerCerts), mgr}} {
		for _, m := range c.others(h) {
			addr := m.ip + ":2377"
			for _, p := range set.probes {
				checks++
				// A follower may apply the removal a moment after the leader.
				var st int
				var msg string
				for end := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
					st, msg = a.callWith(set.hc, p.method, addr, p.path, p.body, p.header)
					if st == http.StatusForbidden && strings.Contains(msg, want) {
						refused++
						break
					}
					if time.Now().After(end) {
						t.Errorf("%s certificate, %s (%s %s) on %s: %d %q, want 403 %q", set.role, p.what, p.method, p.path, m.name, st, msg, want)
						break
					}
				}
			}
		}
	}
	// The raft port: its handshake admits any manager certificate, so the
	// refusal is the manager closing the connection at once, where a
	// member's connection would stay open waiting for an RPC.
	for _, m := range c.others(h) {
		checks++
		if err := a.raftRefused(m.ip+":2377", managerCerts); err != nil {
			t.Errorf("raft port of %s with the removed node's manager certificate: %v", m.name, err)
		} else {
			refused++
		}
	}
	// The nodes' own listener, which streams task logs to managers: it
	// holds no tombstones, and refuses a manager certificate of a node its
	// assignments no longer name among the managers.
	mhc := nodeClient(t, a, managerCerts)
	for _, m := range c.others(h) {
		checks++
		addr := m.ip + ":2378"
		for end := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			st, _, raw := a.send(mhc, http.MethodGet, addr, "/v1/tasks/none/logs", nil, "")
			if st == http.StatusForbidden && strings.Contains(string(raw), "not one of the cluster's") {
				refused++
				break
			}
			if time.Now().After(end) {
				t.Errorf("manager certificate, task logs on %s's node listener %s: %d %q, want 403 naming a node that is no manager", m.name, addr, st, raw)
				break
			}
		}
	}
	if n, err := lead.nodes(); err == nil {
		for _, nd := range n {
			if nd.ID == oldID {
				t.Errorf("the removed node %s is listed again after its refused heartbeats", oldID)
			}
		}
	}

	// The machine joins again: a fresh data dir, a new token, a new ID.
	h.removeLeftovers()
	ktest.RemoveSecretFS(oldID)
	if err := os.RemoveAll(h.dataDir); err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(lead.mustCLI("cluster", "join-token", "worker", "-q"))
	took := c.join(h, lead, token)
	newID := h.nodeID(t)
	if newID == oldID {
		t.Errorf("the node joined again under its removed ID %s", oldID)
	}
	summary("T7", "revoked node", t.Failed(), "%d of %d requests with the removed node's manager and worker certificates refused by the %d other managers (heartbeat, watch, status, renewal, cluster, manager routes, manager-ready, forwarded admin, raft port, the nodes' log listener); rejoined with a new token as %s in %s",
		refused, checks, len(c.others(h)), short(newID), took.Round(time.Millisecond))
}
