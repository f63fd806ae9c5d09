package client

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// deadAddr is an address nothing listens on (a listener opened and closed).
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func newTestServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *http.Transport) {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	return srv, srv.Client().Transport.(*http.Transport).Clone()
}

func TestFailoverOnConnectionError(t *testing.T) {
	var uploads [][]byte
	srv, tr := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/cluster":
			w.Write([]byte(`{"id":"c1"}`))
		case "/v1/images":
			b, _ := io.ReadAll(r.Body)
			uploads = append(uploads, b)
			w.Write([]byte(`{"name":"x"}`))
		}
	})
	live := srv.Listener.Addr().String()
	dead := deadAddr(t)
	c, err := New(Config{Addrs: []string{dead, live}, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(t.Context())
	if err != nil || info.ID != "c1" {
		t.Fatalf("info = %+v, %v", info, err)
	}
	if got := c.Addrs(); !slices.Equal(got, []string{live, dead}) {
		t.Fatalf("after failover Addrs() = %v, want the live manager first", got)
	}
	// An upload is re-read from the start on the manager that answers.
	c.SetAddrs([]string{dead, live})
	c.st.cur = 0
	if _, err := c.UploadImage(t.Context(), "x", bytes.NewReader([]byte("archive"))); err != nil {
		t.Fatal(err)
	}
	if len(uploads) != 1 || string(uploads[0]) != "archive" {
		t.Fatalf("uploads = %q", uploads)
	}
}

func TestAllManagersUnreachable(t *testing.T) {
	_, tr := newTestServer(t, func(http.ResponseWriter, *http.Request) {})
	c, err := New(Config{Addrs: []string{deadAddr(t), deadAddr(t)}, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Nodes(t.Context())
	var ue *UnreachableError
	if !errors.As(err, &ue) || len(ue.Addrs) != 2 || !strings.Contains(err.Error(), "no manager reachable") {
		t.Fatalf("err = %v, want an UnreachableError naming both managers", err)
	}
}

// An answer, even an error, is final: the next manager is not tried, and the
// server's message reaches the caller.
func TestServerErrorIsFinalAndCarriesMessage(t *testing.T) {
	calls := 0
	srv, tr := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":"service \"web\": replicas: must be ≥ 0"}`))
	})
	addr := srv.Listener.Addr().String()
	c, err := New(Config{Addrs: []string{addr, addr}, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ScaleService(t.Context(), "web", 1)
	if StatusOf(err) != http.StatusBadRequest || err.Error() != `service "web": replicas: must be ≥ 0` {
		t.Fatalf("err = %v (status %d)", err, StatusOf(err))
	}
	if calls != 1 {
		t.Fatalf("server called %d times, want 1", calls)
	}
}

func TestStaleAddsQueryToReadsOnly(t *testing.T) {
	var queries []string
	srv, tr := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.Method+" "+r.URL.RawQuery)
		w.Write([]byte(`[]`))
	})
	c, err := New(Config{Addrs: []string{srv.Listener.Addr().String()}, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stale().Services(t.Context()); err != nil {
		t.Fatal(err)
	}
	_ = c.Stale().ReportStatus(t.Context(), apiReport())
	if _, err := c.Services(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := []string{"GET stale=true", "POST ", "GET "}
	if !slices.Equal(queries, want) {
		t.Fatalf("queries = %q, want %q", queries, want)
	}
}

// TestSetAddrsOrder: before any manager answered, a new list is tried in
// its own order (the agent's preferred manager first); once one answered,
// it stays first while it is listed.
func TestSetAddrsOrder(t *testing.T) {
	_, tr := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"id":"c1"}`))
	})
	c, err := New(Config{Addrs: []string{"a:1", "b:1", "c:1"}, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	c.SetAddrs([]string{"c:1", "a:1", "b:1"})
	if got := c.Addrs(); !slices.Equal(got, []string{"c:1", "a:1", "b:1"}) {
		t.Fatalf("before any answer Addrs() = %v, want the new order", got)
	}
	c.markGood("a:1")
	c.SetAddrs([]string{"b:1", "c:1", "a:1"})
	if got := c.Addrs(); !slices.Equal(got, []string{"a:1", "b:1", "c:1"}) {
		t.Fatalf("after a:1 answered Addrs() = %v, want a:1 kept first", got)
	}
	c.SetAddrs([]string{"b:1", "c:1"})
	c.SetAddrs([]string{"c:1", "b:1"})
	if got := c.Addrs(); !slices.Equal(got, []string{"c:1", "b:1"}) {
		t.Fatalf("once the manager that answered is gone Addrs() = %v, want the new order", got)
	}
}
