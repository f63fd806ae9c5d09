package apiserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/store"
)

// bodyRoutes are the routes that decode a request body, each with the
// caller allowed to reach its decoder.
var bodyRoutes = []struct {
	method, path, caller string
}{
	{http.MethodPost, "/v1/join", "none"},
	{http.MethodPost, "/v1/services", "admin"},
	{http.MethodPost, "/v1/services/web/update", "admin"},
	{http.MethodPost, "/v1/services/web/scale", "admin"},
	{http.MethodPost, "/v1/nodes/w1/update", "admin"},
	{http.MethodPost, "/v1/join-tokens/worker/rotate", "admin"},
	{http.MethodPost, "/v1/agent/register", "worker"},
	{http.MethodPost, "/v1/agent/status", "worker"},
	{http.MethodPost, "/v1/agent/role", "worker"},
	{http.MethodPost, "/v1/agent/manager-ready", "manager"},
	{http.MethodPost, "/v1/certs/renew", "worker"},
}

// kekBackend has a real-sized key-encryption key, so token rotation (which
// seals the new token) gets as far as it would in a manager.
type kekBackend struct{ *fakeBackend }

func (kekBackend) KEK() []byte { return bytes.Repeat([]byte{7}, 32) }

func fuzzSpec() api.ServiceSpec {
	return api.ServiceSpec{Name: "web", Mode: api.ModeReplicated, Replicas: 2,
		Task: api.TaskSpec{Container: api.ContainerSpec{Image: "warren/demo:v1"}}}
}

// FuzzRequestBody: any body on any route that decodes one gets an answer
// with a status the caller can act on — 2xx, a 4xx naming what was wrong,
// or 503 — never a 500 (an error no decoder or validator turned into a
// message) and never a panic.
func FuzzRequestBody(f *testing.F) {
	spec, _ := json.Marshal(fuzzSpec())
	for i, b := range [][]byte{
		[]byte(`{"token":"WRN-1-x-y","role":"worker","csr_pem":"","hostname":"h","addr":"10.0.0.9"}`),
		spec,
		[]byte(`{"name":"web","mode":"replicated","replicas":3,"task":{"container":{"image":"warren/demo:v2"},"health":{"http":"/healthz","interval":"1s","timeout":"2s"}}}`),
		[]byte(`{"replicas":5}`),
		[]byte(`{"availability":"drain","label_add":{"site":"a"},"label_rm":["x"]}`),
		[]byte(`{}`),
		[]byte(`{"node_id":"w1","hostname":"worker-1","resources":{"nano_cpus":1}}`),
		[]byte(`{"node_id":"w1","tasks":{"t1":{"state":"running"}}}`),
		[]byte(`{"role":"manager"}`),
		[]byte(`{"raft_addr":"10.0.0.1:2378"}`),
		[]byte(`{"csr_pem":"-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n"}`),
		[]byte(`{"replicas":-1}`), []byte(`{"replicas":1}{"replicas":2}`), []byte(`null`), []byte(`[`), []byte("\xff"),
		[]byte(`{"name":"web","ports":[{"published":70000,"target":80}]}`),
	} {
		f.Add(uint8(i), b)
		f.Add(uint8(i+3), b)
	}
	var c *cluster
	var base bytes.Buffer
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rt := bodyRoutes[int(route)%len(bodyRoutes)]
		// The CA and certificates are made once per fuzz process (key
		// generation dominates otherwise); every input gets a fresh store.
		if c == nil {
			c = newCluster(t)
			c.apply(t, &store.Batch{Now: testNow, PutServices: []api.Service{{ID: "s1", Spec: fuzzSpec()}}})
			if err := c.st.Snapshot(&base); err != nil {
				t.Fatal(err)
			}
		}
		c.st = store.New()
		if err := c.st.Restore(bytes.NewReader(base.Bytes())); err != nil {
			t.Fatal(err)
		}
		c.idx = c.st.Index()
		s, err := New(Config{Backend: kekBackend{c.backend(t, "m1", true)}, CAPool: c.ca.Pool, Now: func() time.Time { return testNow }})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, rt.method, rt.path, bytes.NewReader(body))
		h := s.Handler()
		if rt.caller == "admin" {
			h = s.UnixHandler()
		} else if cert, ok := c.certs[rt.caller]; ok {
			leaf, err := x509.ParseCertificate(cert.Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
		} else {
			req.TLS = &tls.ConnectionState{}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s with %q: status %d: %s", rt.method, rt.path, body, rec.Code, rec.Body.Bytes())
		}
		if rec.Code >= 400 {
			var e client.Error
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Message == "" {
				t.Fatalf("%s %s: status %d without a message: %q", rt.method, rt.path, rec.Code, rec.Body.Bytes())
			}
		}
	})
}

// FuzzDecodeSpec: a service spec of any bytes decodes and validates or is
// refused with a 400; a spec that passes validation survives the JSON round
// trip it takes through raft unchanged.
func FuzzDecodeSpec(f *testing.F) {
	spec, _ := json.Marshal(fuzzSpec())
	f.Add(spec)
	f.Add([]byte(`{"name":"web","mode":"global","task":{"container":{"image":"a"},"resources":{"memory_bytes":1},"placement":{"constraints":["node.labels.site==a"]}}}`))
	f.Add([]byte(`{"name":"Web_1","replicas":1e99}`))
	f.Add([]byte(`{"name":"web","labels":{"":""},"ports":[{"protocol":"sctp","target":0}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/v1/services", bytes.NewReader(body))
		s, err := decodeSpec(req)
		if err != nil {
			if he, ok := err.(*httpError); !ok || he.status != http.StatusBadRequest {
				t.Fatalf("decodeSpec(%q): %T %v, want a 400", body, err, err)
			}
			return
		}
		s = withDefaults(s)
		if err := validateSpec(s, "", nil); err != nil {
			return
		}
		enc, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("valid spec does not encode: %v", err)
		}
		var back api.ServiceSpec
		if err := json.Unmarshal(enc, &back); err != nil {
			t.Fatalf("valid spec does not decode back: %v", err)
		}
		again, _ := json.Marshal(back)
		if !bytes.Equal(enc, again) {
			t.Fatalf("valid spec changes in the round trip:\n%s\n%s", enc, again)
		}
	})
}
