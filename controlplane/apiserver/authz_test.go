package apiserver

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/warrenhq/warren/controlplane/client"
)

// callerKinds are the five kinds of caller every route is tried with.
var callerKinds = []string{"none", "other-ca", "worker", "manager", "admin"}

// wantAllowed says, for every route, which kinds of caller get through. A
// route in the table without an entry here fails the test, so a new route
// cannot ship without someone deciding who may call it.
var wantAllowed = map[string]string{
	"GET /v1/cluster":                    "worker manager admin",
	"POST /v1/join":                      "none other-ca worker manager admin",
	"POST /v1/agent/manager-ready":       "manager",
	"GET /v1/join-tokens":                "admin",
	"POST /v1/join-tokens/{role}/rotate": "admin",
	"GET /v1/nodes":                      "manager admin",
	"GET /v1/nodes/{ref}":                "manager admin",
	"POST /v1/nodes/{ref}/update":        "admin",
	"DELETE /v1/nodes/{ref}":             "admin",
	"POST /v1/nodes/{ref}/promote":       "admin",
	"POST /v1/nodes/{ref}/demote":        "admin",
	"POST /v1/services":                  "admin",
	"GET /v1/services":                   "manager admin",
	"GET /v1/services/{ref}":             "manager admin",
	"POST /v1/services/{ref}/update":     "admin",
	"POST /v1/services/{ref}/scale":      "admin",
	"DELETE /v1/services/{ref}":          "admin",
	"POST /v1/services/{ref}/promote":    "admin",
	"POST /v1/services/{ref}/rollback":   "admin",
	"GET /v1/tasks":                      "manager admin",
	"GET /v1/tables":                     "manager admin",
	"GET /v1/services/{ref}/logs":        "admin",
	"POST /v1/agent/register":            "worker manager",
	"GET /v1/agent/assignments":          "worker manager",
	"POST /v1/agent/status":              "worker manager",
	"POST /v1/agent/role":                "worker manager",
	"POST /v1/images":                    "admin",
	"GET /v1/images":                     "worker manager admin",
	"DELETE /v1/images/{name...}":        "admin",
	"POST /v1/volumes":                   "admin",
	"GET /v1/volumes":                    "manager admin",
	"GET /v1/volumes/{name}":             "manager admin",
	"DELETE /v1/volumes/{name}":          "admin",
	"GET /v1/image-blobs/{name...}":      "worker manager admin",
	"POST /v1/image-holders/{name...}":   "manager",
	"POST /v1/certs/renew":               "worker manager admin",
	"POST /v1/secrets":                   "admin",
	"GET /v1/secrets":                    "manager admin",
	"GET /v1/secrets/{ref}":              "manager admin",
	"POST /v1/secrets/{ref}/update":      "admin",
	"DELETE /v1/secrets/{ref}":           "admin",
	"POST /v1/configs":                   "admin",
	"GET /v1/configs":                    "manager admin",
	"GET /v1/configs/{ref}":              "manager admin",
	"POST /v1/configs/{ref}/update":      "admin",
	"DELETE /v1/configs/{ref}":           "admin",
	"POST /v1/cluster/update":            "admin",
	"GET /v1/cluster/unlock-key":         "admin",
	"POST /v1/cluster/unlock-key/rotate": "admin",
	"POST /v1/cluster/unlock":            "admin",
	"GET /v1/cluster/registry":           "manager admin",
	"POST /v1/cluster/registry":          "admin",
	"POST /v1/registry/logins":           "admin",
	"GET /v1/registry/logins":            "manager admin",
	"DELETE /v1/registry/logins/{host}":  "admin",
}

// concretePath fills a pattern's wildcards.
func concretePath(pattern string) string {
	r := strings.NewReplacer("{name...}", "warren/demo:1", "{role}", "worker", "{ref}", "x")
	return r.Replace(pattern)
}

// TestAuthorisationEveryRoute calls every route of the real table, with its
// real middleware, as each kind of caller. Handlers are replaced by a stub so
// the answer is decided by authorisation alone.
func TestAuthorisationEveryRoute(t *testing.T) {
	c := newCluster(t)
	s := c.newServer(t, c.backend(t, "m1", true))

	seen := map[string]bool{}
	stubbed := s.Routes()
	for i := range stubbed {
		key := stubbed[i].Method + " " + stubbed[i].Pattern
		seen[key] = true
		if _, ok := wantAllowed[key]; !ok {
			t.Errorf("route %s has no entry in wantAllowed: decide which callers may use it", key)
		}
		stubbed[i].Handler = func(w http.ResponseWriter, r *http.Request, id Identity) error {
			writeJSON(w, http.StatusOK, map[string]string{"role": string(id.Role), "node": id.NodeID})
			return nil
		}
	}
	for key := range wantAllowed {
		if !seen[key] {
			t.Errorf("wantAllowed lists %s, which is not in the route table", key)
		}
	}
	srv := c.serve(t, s.buildMux(stubbed))

	for _, kind := range callerKinds {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: c.tlsFor(kind)}}
		for _, rt := range stubbed {
			key := rt.Method + " " + rt.Pattern
			allowed := strings.Contains(" "+wantAllowed[key]+" ", " "+kind+" ")
			req, _ := http.NewRequest(rt.Method, srv.URL+concretePath(rt.Pattern), nil)
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("%s as %s: %v", key, kind, err)
			}
			var body client.Error
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			want := http.StatusOK
			if !allowed {
				want = http.StatusForbidden
				if kind == "none" || kind == "other-ca" {
					want = http.StatusUnauthorized
				}
			}
			if resp.StatusCode != want {
				t.Errorf("%s as %s: status %d, want %d (%s)", key, kind, resp.StatusCode, want, body.Message)
				continue
			}
			if allowed {
				continue
			}
			// The refusal names what is missing.
			switch kind {
			case "none":
				if !strings.Contains(body.Message, "no client certificate") {
					t.Errorf("%s as none: message %q does not say the certificate is missing", key, body.Message)
				}
			case "other-ca":
				if !strings.Contains(body.Message, "not valid for this cluster") {
					t.Errorf("%s as other-ca: message %q does not say the certificate is foreign", key, body.Message)
				}
			default:
				if !strings.Contains(body.Message, "needs role") || !strings.Contains(body.Message, "role "+kind) {
					t.Errorf("%s as %s: message %q does not name the needed and the actual role", key, kind, body.Message)
				}
			}
		}
	}
}

// TestForwardedIdentityOnlyFromManagers: a worker cannot claim to be an
// admin with the header; a manager forwarding for an admin can.
func TestForwardedIdentityOnlyFromManagers(t *testing.T) {
	c := newCluster(t)
	s := c.newServer(t, c.backend(t, "m1", true))
	srv := c.serve(t, s.Handler())
	for _, tc := range []struct {
		kind string
		want int
	}{{"worker", http.StatusForbidden}, {"manager", http.StatusOK}} {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: c.tlsFor(tc.kind)}}
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/join-tokens", nil)
		req.Header.Set(client.HeaderForwardedFor, "admin;op")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s sending %s: admin: status %d, want %d", tc.kind, client.HeaderForwardedFor, resp.StatusCode, tc.want)
		}
	}
}

// TestUnixSocketCallersAreAdmin: the unix handler grants admin routes and
// nothing more (no node identity for agent routes).
func TestUnixSocketCallersAreAdmin(t *testing.T) {
	c := newCluster(t)
	s := c.newServer(t, c.backend(t, "m1", true))
	dir := t.TempDir()
	l, err := ListenUnix(dir + "/api.sock")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: s.UnixHandler()}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })

	cl, err := client.New(client.Config{Socket: dir + "/api.sock"})
	if err != nil {
		t.Fatal(err)
	}
	toks, err := cl.JoinTokens(t.Context())
	if err != nil {
		t.Fatalf("join-tokens over the unix socket: %v", err)
	}
	if len(toks) != 2 || !toks[0].Set {
		t.Errorf("join tokens = %+v", toks)
	}
	if _, err := cl.Assignments(t.Context(), 0, 0); client.StatusOf(err) != http.StatusForbidden {
		t.Errorf("assignments over the unix socket: err %v, want 403", err)
	}
}
