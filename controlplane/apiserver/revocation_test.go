package apiserver

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/ca"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/store"
)

// TestRemovedNodeRefusedOnEveryRoute: once w1 and m1 are tombstoned, every
// route either kind of node could call before — heartbeats, status,
// assignment watches, renewal, the manager-only reads — refuses their
// certificates with the message that says what to do, while the open join
// route still serves them as anyone, and an admin is untouched. Handlers
// are stubbed as in TestAuthorisationEveryRoute, so only the middleware
// decides.
func TestRemovedNodeRefusedOnEveryRoute(t *testing.T) {
	c := newCluster(t)
	s := c.newServer(t, c.backend(t, "m1", true))
	srv, routes := c.serve(t, identityEcho(s)), s.Routes()
	do := func(kind string, rt Route) (int, string, map[string]string) {
		t.Helper()
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: c.tlsFor(kind)}}
		req, _ := http.NewRequest(rt.Method, srv.URL+concretePath(rt.Pattern), nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s as %s: %v", rt.Method, rt.Pattern, kind, err)
		}
		defer resp.Body.Close()
		var raw json.RawMessage
		_ = json.NewDecoder(resp.Body).Decode(&raw)
		var e client.Error
		_ = json.Unmarshal(raw, &e)
		var ok map[string]string
		_ = json.Unmarshal(raw, &ok)
		return resp.StatusCode, e.Message, ok
	}

	// Before the removal every node route lets them through: the check
	// must not refuse what was never removed.
	before := map[string]int{}
	for _, kind := range []string{"worker", "manager"} {
		for _, rt := range routes {
			if allowed(rt, Role(kind)) && !allowed(rt, RoleNone) {
				if st, msg, _ := do(kind, rt); st != http.StatusOK {
					t.Fatalf("%s %s as %s before removal: %d %s", rt.Method, rt.Pattern, kind, st, msg)
				}
				before[kind]++
			}
		}
	}
	if before["worker"] < 6 || before["manager"] < 10 {
		t.Fatalf("only %v routes open to nodes: the table is not what this test thinks", before)
	}

	// A node whose join this manager's store has not applied yet holds a
	// certificate for an ID the store does not know: not refused.
	certPEM, keyPEM, err := c.ca.Issue(ca.Identity{NodeID: "joining", Role: ca.RoleWorker}, 0, testNow, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if c.certs["joining"], err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}

	c.apply(t, &store.Batch{RemoveNodes: []string{"w1", "m1"}})
	for _, rt := range routes {
		if allowed(rt, RoleWorker) {
			if st, msg, body := do("joining", rt); st != http.StatusOK || body["node"] != "joining" {
				t.Errorf("%s %s as a node the store does not know yet: %d %q", rt.Method, rt.Pattern, st, msg)
			}
		}
	}
	refused := map[string]int{}
	for _, kind := range []string{"worker", "manager"} {
		node := map[string]string{"worker": "w1", "manager": "m1"}[kind]
		for _, rt := range routes {
			key := rt.Method + " " + rt.Pattern + " as " + kind
			st, msg, body := do(kind, rt)
			switch {
			case allowed(rt, RoleNone):
				if st != http.StatusOK || body["role"] != string(RoleNone) {
					t.Errorf("%s: %d %q %v, want it served as a caller without identity", key, st, msg, body)
				}
			case st != http.StatusForbidden:
				t.Errorf("%s: status %d, want 403 (%s)", key, st, msg)
			case allowed(rt, Role(kind)):
				want := "node " + node + " was removed from the cluster; join again"
				if !strings.Contains(msg, want) {
					t.Errorf("%s: %q, want %q", key, msg, want)
				}
				refused[kind]++
			}
		}
	}
	if refused["worker"] != before["worker"] || refused["manager"] != before["manager"] {
		t.Errorf("refused %v of %v node routes after removal", refused, before)
	}
	// A removed manager's certificate cannot vouch for an administrator
	// either: forwarding is a manager's privilege.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: c.tlsFor("manager")}}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/join-tokens", nil)
	req.Header.Set(client.HeaderForwardedFor, "admin;op")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e client.Error
	_ = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(e.Message, "node m1 was removed") {
		t.Errorf("a removed manager forwarding for an admin: %d %q, want 403 naming m1", resp.StatusCode, e.Message)
	}
	for _, rt := range routes {
		if allowed(rt, RoleAdmin) {
			if st, msg, _ := do("admin", rt); st != http.StatusOK {
				t.Errorf("%s %s as admin after two nodes were removed: %d %s", rt.Method, rt.Pattern, st, msg)
			}
		}
	}
}

// TestRevocationThroughFollower: a follower forwarding for a removed worker
// is refused by the leader even if the follower's own view lags (here: the
// follower's store says nothing, the leader's has the tombstone), and node
// rm through the API is what writes the tombstone.
func TestRevocationThroughFollower(t *testing.T) {
	c := newCluster(t)
	leader := c.serve(t, c.newServer(t, c.backend(t, "m1", true)).Handler())
	n, _ := c.st.View().Node("m1")
	n.Status.Manager.APIAddr = hostOf(leader)
	c.apply(t, &store.Batch{NodeStatuses: []store.NodeStatusUpdate{{NodeID: "m1", Status: n.Status}}})

	// The follower has its own store, a copy from before the removal.
	lagging := &cluster{st: store.New(), ca: c.ca, certs: c.certs, managerServer: c.managerServer}
	var snap strings.Builder
	if err := c.st.Snapshot(&snap); err != nil {
		t.Fatal(err)
	}
	if err := lagging.st.Restore(strings.NewReader(snap.String())); err != nil {
		t.Fatal(err)
	}
	fb := lagging.backend(t, "m2", false)
	fb.fwdTLS = c.backend(t, "m2", false).fwdTLS
	follower := c.serve(t, c.newServer(t, fb).Handler())

	ctx := t.Context()
	worker := c.client(t, "worker", hostOf(follower))
	if err := worker.Register(ctx, api.NodeRegistration{Hostname: "before"}); err != nil {
		t.Fatalf("heartbeat before the removal: %v", err)
	}
	admin := c.client(t, "admin", hostOf(leader))
	// node rm refuses a node that is not down without force.
	w1, _ := c.st.View().Node("w1")
	w1.Status.State = api.NodeDown
	c.apply(t, &store.Batch{PutNodes: []api.Node{w1}})
	if _, err := admin.RemoveNode(ctx, "w1", false); err != nil {
		t.Fatal(err)
	}
	if !c.st.View().NodeRemoved("w1") {
		t.Fatal("node rm left no tombstone")
	}
	if lagging.st.View().NodeRemoved("w1") {
		t.Fatal("the follower's copy must lag for this test")
	}
	err := worker.Register(ctx, api.NodeRegistration{Hostname: "after"})
	wantErr(t, err, http.StatusForbidden, "node w1 was removed from the cluster; join again")
	if _, ok := c.st.View().Node("w1"); ok {
		t.Error("the refused heartbeat brought the removed node back")
	}
}

// TestDemotedManagerCertificateActsAsWorker: after `node demote` the store
// says m1 is a worker, yet m1 still holds its manager certificate. With it
// m1 keeps the worker routes and completes its role change, but reads no
// manager route and cannot vouch for an administrator, directly or through
// a follower whose store has not seen the demotion.
func TestDemotedManagerCertificateActsAsWorker(t *testing.T) {
	c := newCluster(t)
	s := c.newServer(t, c.backend(t, "m9", true))
	srv := c.serve(t, identityEcho(s))
	// m2 is another manager, forwarding with its own certificate.
	certPEM, keyPEM, err := c.ca.Issue(ca.Identity{NodeID: "m2", Role: ca.RoleManager}, 0, testNow, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if c.certs["m2"], err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	get := func(kind, method, path, forwardedFor string) (int, map[string]string) {
		t.Helper()
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: c.tlsFor(kind)}}
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if forwardedFor != "" {
			req.Header.Set(client.HeaderForwardedFor, forwardedFor)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	if st, _ := get("manager", http.MethodGet, "/v1/join-tokens", "admin;op"); st != http.StatusOK {
		t.Fatalf("a manager forwarding for an admin before the demotion: %d", st)
	}

	m1, _ := c.st.View().Node("m1")
	m1.Spec.Role = api.RoleWorker
	c.apply(t, &store.Batch{PutNodes: []api.Node{m1}})
	for _, tc := range []struct {
		what, kind, method, path, fwd string
		want                          int
		role                          string
	}{
		{"a manager route", "manager", http.MethodGet, "/v1/nodes", "", http.StatusForbidden, ""},
		{"forwarding for an admin", "manager", http.MethodGet, "/v1/join-tokens", "admin;op", http.StatusForbidden, ""},
		{"a worker route", "manager", http.MethodGet, "/v1/agent/assignments", "", http.StatusOK, "worker"},
		{"the role change", "manager", http.MethodPost, "/v1/agent/role", "", http.StatusOK, "manager"},
		// A follower whose store has not seen the demotion forwards m1 as a manager.
		{"a manager route through a lagging follower", "m2", http.MethodGet, "/v1/nodes", "manager;m1", http.StatusForbidden, ""},
		{"a manager route for a real manager through a follower", "m2", http.MethodGet, "/v1/nodes", "manager;m2", http.StatusOK, "manager"},
	} {
		st, body := get(tc.kind, tc.method, tc.path, tc.fwd)
		if st != tc.want || tc.role != "" && body["role"] != tc.role {
			t.Errorf("%s: %d as %q, want %d as %q", tc.what, st, body["role"], tc.want, tc.role)
		}
	}
}

// identityEcho is s's mux with every handler answering the identity it
// was called with, so only the middleware decides.
func identityEcho(s *Server) http.Handler {
	stubbed := s.Routes()
	for i := range stubbed {
		stubbed[i].Handler = func(w http.ResponseWriter, r *http.Request, id Identity) error {
			writeJSON(w, http.StatusOK, map[string]string{"role": string(id.Role), "node": id.NodeID})
			return nil
		}
	}
	return s.buildMux(stubbed)
}
