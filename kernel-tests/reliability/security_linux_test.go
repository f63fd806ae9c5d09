//go:build linux

package reliability

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/ca"
	"github.com/warrenhq/warren/controlplane/client"
)

// call sends one request to addr and returns the status and error message.
func (a *apiClient) call(hc *http.Client, method, addr, path string, in any) (int, string, []byte) {
	return a.send(hc, method, addr, path, in, "")
}

// send is call with, when set, the forwarded-for header only managers may
// send.
func (a *apiClient) send(hc *http.Client, method, addr, path string, in any, forwardedFor string) (int, string, []byte) {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, "https://"+addr+path, body)
	if forwardedFor != "" {
		req.Header.Set(client.HeaderForwardedFor, forwardedFor)
	}
	if hc == nil {
		hc = a.hc
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err.Error(), nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var e client.Error
	_ = json.Unmarshal(raw, &e)
	return resp.StatusCode, e.Message, raw
}

// securityLifecycle (T7) runs on a formed cluster: a join token that
// expired, one that was rotated away, a token of the wrong role, and a
// client certificate from another CA are all refused, and the refusal says
// which. The authorisation matrix over every route is
// controlplane/apiserver's TestAuthorization.
func securityLifecycle(t *testing.T, c *cluster, a *apiClient) {
	addr := a.addrs[0]
	key, err := ca.NewNodeKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ca.NewCSR(key, "joiner", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	join := func(token, role string) (int, string) {
		st, msg, _ := a.call(nil, http.MethodPost, addr, "/v1/join", client.JoinRequest{Token: token, Role: role, CSRPEM: string(csr), Hostname: "intruder", Addr: "192.0.2.1"})
		return st, msg
	}
	rotate := func(ttl time.Duration) string {
		var info client.TokenInfo
		st, msg, raw := a.call(nil, http.MethodPost, addr, "/v1/join-tokens/worker/rotate", client.RotateTokenRequest{TTL: api.Duration(ttl)})
		if st != http.StatusOK || json.Unmarshal(raw, &info) != nil || info.Token == "" {
			t.Fatalf("rotate worker token: %d %s", st, msg)
		}
		return info.Token
	}
	checks, refused := 0, 0
	expect := func(what string, st int, msg, want string) {
		checks++
		if st == http.StatusUnauthorized || st == http.StatusForbidden {
			refused++
		} else {
			t.Errorf("%s: status %d (%s), want 401 or 403", what, st, msg)
		}
		if want != "" && !strings.Contains(msg, want) {
			t.Errorf("%s: refused with %q, want it to say %q", what, msg, want)
		}
	}

	short := rotate(2 * time.Second)
	var st int
	var msg string
	eventually(t, "the 2 s token to expire", 30*time.Second, func() error {
		if st, msg = join(short, "worker"); !strings.Contains(msg, "expired") {
			return fmt.Errorf("join with it: %d %s", st, msg)
		}
		return nil
	})
	expect("expired token", st, msg, "expired")

	current := rotate(0)
	st, msg = join(short, "worker")
	expect("rotated-away token", st, msg, "")
	st, msg = join(current, "manager")
	expect("worker token used to join as manager", st, msg, "wrong role")
	st, msg = join(strings.Replace(current, "-", "-9", 1), "worker")
	checks++
	if st != http.StatusUnauthorized && st != http.StatusBadRequest {
		t.Errorf("token of an unknown version: status %d (%s)", st, msg)
	} else {
		refused++
	}

	other, err := ca.NewCA(time.Now(), rand.Reader, "other-cluster")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := other.Issue(ca.Identity{NodeID: "op", Role: ca.RoleAdmin}, 0, time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	tr := a.hc.Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
	defer tr.CloseIdleConnections()
	foreign := &http.Client{Transport: tr}
	for _, p := range []string{"/v1/nodes", "/v1/join-tokens"} {
		st, msg, _ := a.call(foreign, http.MethodGet, addr, p, nil)
		if st == 0 {
			checks++
			refused++ // refused in the TLS handshake
			continue
		}
		expect("admin certificate of another CA on "+p, st, msg, "")
	}
	st, msg, _ = a.call(foreign, http.MethodPost, addr, "/v1/services", api.ServiceSpec{Name: "evil", Mode: api.ModeReplicated, Task: api.TaskSpec{Container: api.ContainerSpec{Image: "x"}}})
	if st == 0 {
		checks++
		refused++
	} else {
		expect("service create with another CA's certificate", st, msg, "")
	}
	summary("T7", "join tokens and certificates", t.Failed(), "%d of %d refused (expired, rotated, wrong role, unknown version, another CA's admin cert x3)", refused, checks)
}
