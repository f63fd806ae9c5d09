package apiserver

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/store"
)

// wantAudited says, for every route, whether it is an administrative write
// that leaves one audit line. A new route without an entry fails the test.
var wantAudited = map[string]bool{
	"GET /v1/cluster":                    false,
	"POST /v1/join":                      true,
	"POST /v1/agent/manager-ready":       false,
	"GET /v1/join-tokens":                false,
	"POST /v1/join-tokens/{role}/rotate": true,
	"GET /v1/nodes":                      false,
	"GET /v1/nodes/{ref}":                false,
	"POST /v1/nodes/{ref}/update":        true,
	"DELETE /v1/nodes/{ref}":             true,
	"POST /v1/nodes/{ref}/promote":       true,
	"POST /v1/nodes/{ref}/demote":        true,
	"POST /v1/services":                  true,
	"POST /v1/volumes":                   true,
	"GET /v1/volumes":                    false,
	"GET /v1/volumes/{name}":             false,
	"DELETE /v1/volumes/{name}":          true,
	"GET /v1/services":                   false,
	"GET /v1/services/{ref}":             false,
	"POST /v1/services/{ref}/update":     true,
	"POST /v1/services/{ref}/scale":      true,
	"DELETE /v1/services/{ref}":          true,
	"POST /v1/services/{ref}/promote":    true,
	"POST /v1/services/{ref}/rollback":   true,
	"GET /v1/tasks":                      false,
	"GET /v1/tables":                     false,
	"GET /v1/services/{ref}/logs":        false,
	"POST /v1/agent/register":            false,
	"GET /v1/agent/assignments":          false,
	"POST /v1/agent/status":              false,
	"POST /v1/agent/role":                false,
	"POST /v1/images":                    true,
	"GET /v1/images":                     false,
	"DELETE /v1/images/{name...}":        true,
	"GET /v1/image-blobs/{name...}":      false,
	"POST /v1/image-holders/{name...}":   false,
	"POST /v1/certs/renew":               false,
	"POST /v1/secrets":                   true,
	"GET /v1/secrets":                    false,
	"GET /v1/secrets/{ref}":              false,
	"POST /v1/secrets/{ref}/update":      true,
	"DELETE /v1/secrets/{ref}":           true,
	"POST /v1/configs":                   true,
	"GET /v1/configs":                    false,
	"GET /v1/configs/{ref}":              false,
	"POST /v1/configs/{ref}/update":      true,
	"DELETE /v1/configs/{ref}":           true,
	"POST /v1/cluster/update":            true,
	"GET /v1/cluster/unlock-key":         false,
	"POST /v1/cluster/unlock-key/rotate": true,
	"POST /v1/cluster/unlock":            true,
	"GET /v1/cluster/registry":           false,
	"POST /v1/cluster/registry":          true,
	"POST /v1/registry/logins":           true,
	"GET /v1/registry/logins":            false,
	"DELETE /v1/registry/logins/{host}":  true,
}

const auditMarker = "audit-secret-9d1c7e44b0"

func readAudit(t *testing.T, path string) []AuditEntry {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, form := range []string{auditMarker, base64.StdEncoding.EncodeToString([]byte(auditMarker)), hex.EncodeToString([]byte(auditMarker))} {
		if bytes.Contains(b, []byte(form)) {
			t.Fatalf("the audit log holds the test secret (%q)", form)
		}
	}
	var out []AuditEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var e AuditEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

func (c *cluster) auditedServer(t *testing.T, b *fakeBackend, path string) *Server {
	t.Helper()
	al, err := OpenAuditLog(path, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })
	s, err := New(Config{Backend: b, CAPool: c.ca.Pool, Now: func() time.Time { return testNow }, Audit: al})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAuditEveryAdminRoute walks the route table: every administrative
// write leaves exactly one line, nothing else leaves any, and no line holds
// the value sent.
func TestAuditEveryAdminRoute(t *testing.T) {
	c := newCluster(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	s := c.auditedServer(t, c.backend(t, "m1", true), path)
	stubbed := s.Routes()
	for i := range stubbed {
		key := stubbed[i].Method + " " + stubbed[i].Pattern
		if _, ok := wantAudited[key]; !ok {
			t.Errorf("route %s has no entry in wantAudited: decide whether it is audited", key)
		}
		if got := audited(stubbed[i]); got != wantAudited[key] {
			t.Errorf("route %s: audited = %v, want %v", key, got, wantAudited[key])
		}
		stubbed[i].Handler = func(w http.ResponseWriter, r *http.Request, id Identity) error {
			writeJSON(w, http.StatusOK, client.WriteResult{Index: 1, ID: "obj-1"})
			return nil
		}
	}
	srv := c.serve(t, s.buildMux(stubbed))
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: c.tlsFor("admin")}}
	body := `{"name":"x","data":"` + base64.StdEncoding.EncodeToString([]byte(auditMarker)) + `","key":"` + auditMarker + `","token":"` + auditMarker + `"}`
	for _, rt := range stubbed {
		key := rt.Method + " " + rt.Pattern
		before := len(readAudit(t, path))
		req, _ := http.NewRequest(rt.Method, srv.URL+concretePath(rt.Pattern), strings.NewReader(body))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		resp.Body.Close()
		lines := readAudit(t, path)[before:]
		switch {
		case !wantAudited[key] && len(lines) != 0:
			t.Errorf("%s: %d audit lines, want none", key, len(lines))
		case wantAudited[key] && len(lines) != 1:
			t.Errorf("%s: %d audit lines, want exactly one", key, len(lines))
		case wantAudited[key]:
			e := lines[0]
			if e.Verb != key || e.Node != "m1" || e.Actor.Role != "admin" || e.Actor.CN != "op" || e.RequestID == "" ||
				e.Source == "" || e.Status != resp.StatusCode || e.Object.ID != "obj-1" || e.Time.IsZero() {
				t.Errorf("%s: entry %+v", key, e)
			}
			if resp.Header.Get(client.HeaderRequestID) != e.RequestID {
				t.Errorf("%s: answer's request id %q, line's %q", key, resp.Header.Get(client.HeaderRequestID), e.RequestID)
			}
		}
	}
}

// With the real handlers: a refused write is audited with its status, a
// secret's hash does not depend on its value, and a write through a
// follower leaves one line, on the leader, naming the follower.
func TestAuditRealWrites(t *testing.T) {
	c := newCluster(t)
	dir := t.TempDir()
	leaderLog, followerLog := filepath.Join(dir, "leader.log"), filepath.Join(dir, "follower.log")
	leader := c.serve(t, c.auditedServer(t, c.backend(t, "m1", true), leaderLog).Handler())
	follower := c.serve(t, c.auditedServer(t, c.backend(t, "m2", false), followerLog).Handler())
	n, _ := c.st.View().Node("m1")
	n.Status.Manager.APIAddr = hostOf(leader)
	c.apply(t, &store.Batch{NodeStatuses: []store.NodeStatusUpdate{{NodeID: "m1", Status: n.Status}}})
	ctx := t.Context()
	admin := c.client(t, "admin", hostOf(leader))

	res, err := admin.CreateSecret(ctx, api.KindSecret, client.SecretCreateRequest{Name: "db", Data: []byte(auditMarker)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateSecret(ctx, api.KindSecret, client.SecretCreateRequest{Name: "db2", Data: []byte("other")}); err != nil {
		t.Fatal(err)
	}
	_, err = admin.CreateSecret(ctx, api.KindSecret, client.SecretCreateRequest{Name: "a/b", Data: []byte(auditMarker)})
	wantErr(t, err, http.StatusBadRequest, "must not contain")
	lines := readAudit(t, leaderLog)
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3", len(lines))
	}
	if e := lines[0]; e.Status != http.StatusCreated || e.Object.Name != "db" || e.Object.ID != res.ID || !strings.HasPrefix(e.SpecHash, "sha256:") {
		t.Fatalf("create line %+v", e)
	}
	if lines[2].Status != http.StatusBadRequest || lines[2].Object.Name != "a/b" {
		t.Fatalf("refused create line %+v", lines[2])
	}

	viaFollower := c.client(t, "admin", hostOf(follower))
	if _, err := viaFollower.RemoveSecret(ctx, api.KindSecret, "db2"); err != nil {
		t.Fatal(err)
	}
	lines = readAudit(t, leaderLog)
	if len(lines) != 4 {
		t.Fatalf("leader has %d lines after a forwarded write, want 4", len(lines))
	}
	if e := lines[3]; e.Verb != "DELETE /v1/secrets/{ref}" || e.Object.Ref != "db2" || e.Actor.CN != "op" || e.Via == "" || e.Via == e.Source {
		t.Fatalf("forwarded line %+v: want the original caller, and the follower in via", e)
	}
	if got := readAudit(t, followerLog); len(got) != 0 {
		t.Fatalf("the follower wrote %d lines for a write the leader served", len(got))
	}
}

func TestAuditLogRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := OpenAuditLog(path, 300, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 20; i++ {
		if err := l.Write(AuditEntry{Verb: "POST /v1/services", RequestID: strings.Repeat("x", 40)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{path, path + ".1", path + ".2"} {
		st, err := os.Stat(p)
		if err != nil || st.Size() > 300 || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, %v", p, st, err)
		}
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Fatal("more rotated files kept than asked")
	}
}

func TestAuditHashLeavesValuesOut(t *testing.T) {
	hash := func(pattern, body string) string {
		r, _ := http.NewRequest(http.MethodPost, "https://x"+pattern, strings.NewReader(body))
		h, _ := bodyHash(r, Route{Method: http.MethodPost, Pattern: pattern})
		got, _ := io.ReadAll(r.Body)
		if string(got) != body {
			t.Fatalf("the handler would read %q, not the body", got)
		}
		return h
	}
	a := hash("/v1/secrets", `{"name":"db","data":"c2VjcmV0LTE="}`)
	b := hash("/v1/secrets", `{"name":"db","data":"c2VjcmV0LTI="}`)
	if a == "" || a != b {
		t.Fatalf("secret hashes %q and %q: must exist and not depend on the value", a, b)
	}
	if hash("/v1/services", `{"name":"a"}`) == hash("/v1/services", `{"name":"b"}`) {
		t.Fatal("different specs, same hash")
	}
	if h := hash("/v1/join", `{"token":"WRN-1-x"}`); h != "" {
		t.Fatalf("join body hashed: %q", h)
	}
	if h := hash("/v1/cluster/unlock", `{"key":"WRNKEY-1-x"}`); h != "" {
		t.Fatalf("unlock body hashed: %q", h)
	}
}
