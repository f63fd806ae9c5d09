package ca

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// countingServer serves HTTPS with cfg and counts requests that reached the
// application: a join request would carry the token's secret.
func countingServer(t *testing.T, cfg *tls.Config) (addr string, requests *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	requests = new(atomic.Int64)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			io.WriteString(w, "joined")
		}),
	}
	srv.ErrorLog = newDiscardLogger() // rejected handshakes are expected
	go srv.Serve(tls.NewListener(ln, cfg))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), requests
}

func TestFetchCA(t *testing.T) {
	c := newTestCA(t, 1, "cluster-a")
	other := newTestCA(t, 2, "cluster-b")
	now := t0.Add(time.Hour)
	manager := issueStore(t, c, Identity{"m0", RoleManager}, 0, t0)
	otherManager := issueStore(t, other, Identity{"m0", RoleManager}, 0, t0)

	// An impostor who copied the real (public) CA certificate and presents
	// it next to a leaf of their own.
	impostor := ServerConfig(c, nil)
	impostor.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		cur := *otherManager.current()
		cur.Certificate = [][]byte{cur.Certificate[0], c.Cert().Raw}
		return &cur, nil
	}
	// A server that presents only its leaf: there is nothing to pin.
	leafOnly := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{*manager.current()}}

	tests := []struct {
		name    string
		server  *tls.Config
		digest  string
		wantErr error
	}{
		{"right digest", ServerConfig(c, manager), c.Digest(), nil},
		{"right digest, upper case", ServerConfig(c, manager), toUpper(c.Digest()), nil},
		{"token of another cluster", ServerConfig(c, manager), other.Digest(), ErrCAMismatch},
		{"server of another cluster", ServerConfig(other, otherManager), c.Digest(), ErrCAMismatch},
		{"impostor with copied CA certificate", impostor, c.Digest(), ErrCAMismatch},
		{"leaf only", leafOnly, c.Digest(), ErrCAMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, requests := countingServer(t, fixedTime(tt.server, now))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := fetchCA(ctx, addr, tt.digest, func() time.Time { return now })
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("fetchCA err = %v, want %v", err, tt.wantErr)
				}
				if n := requests.Load(); n != 0 {
					t.Fatalf("server received %d requests before the pin failed", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("fetchCA: %v", err)
			}
			if got.Digest() != c.Digest() || got.CanSign() {
				t.Fatalf("fetched CA digest %s CanSign %v, want verifier for %s", got.Digest(), got.CanSign(), c.Digest())
			}
			if n := requests.Load(); n != 0 {
				t.Fatalf("FetchCA sent %d requests, want none", n)
			}
			// The pinned CA is now usable for the join request proper — and
			// the counter does see it, so the zero above means something.
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: fixedTime(ClientConfig(got, nil, ManagerServerName), now)}}
			resp, err := client.Get("https://" + addr + "/join")
			if err != nil {
				t.Fatalf("join with the pinned CA: %v", err)
			}
			resp.Body.Close()
			if n := requests.Load(); n != 1 {
				t.Fatalf("server counted %d requests, want 1", n)
			}
		})
	}
	if _, err := FetchCA(context.Background(), "127.0.0.1:1", "nope"); err == nil {
		t.Error("FetchCA with a malformed digest: want error")
	}
}

func toUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
