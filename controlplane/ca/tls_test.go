package ca

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// handshakeResult is what the server saw of one connection.
type handshakeResult struct {
	id    Identity
	ok    bool
	proto string
	err   error
}

// echoServer accepts TLS connections with cfg, reports each handshake and
// echoes lines back.
func echoServer(t *testing.T, cfg *tls.Config) (addr string, results <-chan handshakeResult) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan handshakeResult, 64)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				conn := tls.Server(raw, cfg)
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second)) // hang guard only
				if err := conn.Handshake(); err != nil {
					ch <- handshakeResult{err: err}
					return
				}
				cs := conn.ConnectionState()
				id, ok := IdentityFromConn(cs)
				ch <- handshakeResult{id: id, ok: ok, proto: cs.NegotiatedProtocol}
				r := bufio.NewReader(conn)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := conn.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), ch
}

// roundTrip dials, echoes one line and returns the server's leaf and the
// first error, client side.
func roundTrip(addr string, cfg *tls.Config) (*tls.Conn, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	if err := echo(conn); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

func echo(conn *tls.Conn) error {
	conn.SetDeadline(time.Now().Add(10 * time.Second)) // hang guard only
	if _, err := conn.Write([]byte("ping\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ping\n" {
		return fmt.Errorf("echo: got %q", line)
	}
	return nil
}

func fixedTime(cfg *tls.Config, now time.Time) *tls.Config {
	cfg.Time = func() time.Time { return now }
	return cfg
}

func TestHandshakeMatrix(t *testing.T) {
	c := newTestCA(t, 1, "cluster-a")
	other := newTestCA(t, 2, "cluster-b")
	server := issueStore(t, c, Identity{"m0", RoleManager}, 0, t0)
	now := t0.Add(time.Hour)
	addr, results := echoServer(t, fixedTime(ServerConfig(c, server), now))

	tests := []struct {
		name   string
		client *CertStore
		raft   bool
		// wantID nil means no identity (anonymous); wantReject means the
		// server refuses the handshake.
		wantID     *Identity
		wantReject string // substring of the server's handshake error
	}{
		{name: "no certificate", client: nil},
		{name: "other cluster's certificate", client: issueStore(t, other, Identity{"w9", RoleWorker}, 0, t0), wantReject: "unknown authority"},
		{name: "worker", client: issueStore(t, c, Identity{"w1", RoleWorker}, 0, t0), wantID: &Identity{"w1", RoleWorker}},
		{name: "manager", client: issueStore(t, c, Identity{"m1", RoleManager}, 0, t0), wantID: &Identity{"m1", RoleManager}},
		{name: "admin", client: issueStore(t, c, Identity{"ops", RoleAdmin}, 0, t0), wantID: &Identity{"ops", RoleAdmin}},
		{name: "expired worker", client: issueStore(t, c, Identity{"w2", RoleWorker}, time.Hour, t0.Add(-2*time.Hour)), wantReject: "expired"},
		{name: "not yet valid worker", client: issueStore(t, c, Identity{"w3", RoleWorker}, 0, now.Add(time.Hour)), wantReject: "not yet valid"},
		{name: "raft: manager", client: issueStore(t, c, Identity{"m2", RoleManager}, 0, t0), raft: true, wantID: &Identity{"m2", RoleManager}},
		{name: "raft: worker", client: issueStore(t, c, Identity{"w4", RoleWorker}, 0, t0), raft: true, wantReject: "forbidden"},
		{name: "raft: no certificate", client: nil, raft: true, wantReject: "forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg *tls.Config
			if tt.raft {
				cfg = RaftClientConfig(c, tt.client)
			} else {
				cfg = ClientConfig(c, tt.client, ManagerServerName)
			}
			conn, clientErr := roundTrip(addr, fixedTime(cfg, now))
			if conn != nil {
				conn.Close()
			}
			res := <-results
			if tt.wantReject != "" {
				if res.err == nil || clientErr == nil || !strings.Contains(res.err.Error(), tt.wantReject) {
					t.Fatalf("server err = %v, client err = %v; want the handshake rejected on both sides (%q)", res.err, clientErr, tt.wantReject)
				}
				return
			}
			if res.err != nil || clientErr != nil {
				t.Fatalf("server err = %v, client err = %v; want success", res.err, clientErr)
			}
			if tt.wantID == nil {
				if res.ok {
					t.Fatalf("IdentityFromConn = %v, true; want no identity", res.id)
				}
				return
			}
			if !res.ok || res.id != *tt.wantID {
				t.Fatalf("IdentityFromConn = %v, %v; want %v", res.id, res.ok, *tt.wantID)
			}
			if tt.raft && res.proto != ALPNRaft {
				t.Fatalf("negotiated %q, want %q", res.proto, ALPNRaft)
			}
		})
	}
}

// TestClientRejectsServer: a client only talks to a manager of its own
// cluster whose certificate is valid now.
func TestClientRejectsServer(t *testing.T) {
	c := newTestCA(t, 1, "cluster-a")
	other := newTestCA(t, 2, "cluster-b")
	now := t0.Add(time.Hour)
	tests := []struct {
		name     string
		serverCA *CA
		server   *CertStore
		wantErr  bool
	}{
		{"manager", c, issueStore(t, c, Identity{"m1", RoleManager}, 0, t0), false},
		{"worker posing as manager", c, issueStore(t, c, Identity{"w1", RoleWorker}, 0, t0), true},
		{"manager of another cluster", other, issueStore(t, other, Identity{"m1", RoleManager}, 0, t0), true},
		{"expired manager", c, issueStore(t, c, Identity{"m2", RoleManager}, 30*time.Minute, t0), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, results := echoServer(t, fixedTime(ServerConfig(tt.serverCA, tt.server), now))
			conn, err := roundTrip(addr, fixedTime(ClientConfig(c, nil, ManagerServerName), now))
			if conn != nil {
				conn.Close()
			}
			<-results
			if (err != nil) != tt.wantErr {
				t.Fatalf("client err = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

// TestRaftClientNeedsRaftALPN: a raft dialler refuses a server that did not
// agree to speak raft.
func TestRaftClientNeedsRaftALPN(t *testing.T) {
	c := newTestCA(t, 1, "a")
	srv := ServerConfig(c, issueStore(t, c, Identity{"m0", RoleManager}, 0, t0))
	srv.NextProtos = nil // a server that does not know ALPN at all
	addr, results := echoServer(t, fixedTime(srv, t0))
	_, err := roundTrip(addr, fixedTime(RaftClientConfig(c, issueStore(t, c, Identity{"m1", RoleManager}, 0, t0)), t0))
	<-results
	if err == nil || !strings.Contains(err.Error(), ALPNRaft) {
		t.Fatalf("err = %v, want refusal naming %s", err, ALPNRaft)
	}
}

// TestRenewalSwapLive: a certificate swapped into a CertStore is used by new
// connections, on both ends, while an open connection keeps working and no
// connection made during a storm of swaps fails.
func TestRenewalSwapLive(t *testing.T) {
	c := newTestCA(t, 1, "a")
	now := t0.Add(time.Hour)
	serverStore := issueStore(t, c, Identity{"m0", RoleManager}, 0, t0)
	clientStore := issueStore(t, c, Identity{"w1", RoleWorker}, 0, t0)
	addr, results := echoServer(t, fixedTime(ServerConfig(c, serverStore), now))
	clientCfg := fixedTime(ClientConfig(c, clientStore, ManagerServerName), now)

	conn1, err := roundTrip(addr, clientCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn1.Close()
	<-results
	oldServerSerial := conn1.ConnectionState().PeerCertificates[0].SerialNumber

	// Renew both sides.
	for i, s := range []*CertStore{serverStore, clientStore} {
		id, _ := s.Identity()
		certPEM, keyPEM, err := c.Issue(id, 0, t0.Add(time.Minute), rng(uint64(100+i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Swap(certPEM, keyPEM); err != nil {
			t.Fatal(err)
		}
	}
	if err := echo(conn1); err != nil {
		t.Fatalf("open connection broke after swap: %v", err)
	}
	conn2, err := roundTrip(addr, clientCfg)
	if err != nil {
		t.Fatalf("new connection after swap: %v", err)
	}
	defer conn2.Close()
	<-results
	got := conn2.ConnectionState().PeerCertificates[0].SerialNumber
	if got.Cmp(oldServerSerial) == 0 || got.Cmp(serverStore.Leaf().SerialNumber) != 0 {
		t.Fatalf("new connection saw server serial %v, want renewed %v (old %v)", got, serverStore.Leaf().SerialNumber, oldServerSerial)
	}

	// Swap continuously while clients connect: every connection succeeds.
	ctx, cancel := context.WithCancel(context.Background())
	var swaps sync.WaitGroup
	swaps.Add(1)
	go func() {
		defer swaps.Done()
		for i := 0; ctx.Err() == nil; i++ {
			certPEM, keyPEM, err := c.Issue(Identity{"m0", RoleManager}, 0, t0, rng(uint64(1000+i)))
			if err == nil {
				err = serverStore.Swap(certPEM, keyPEM)
			}
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var errs []error
	for range 20 {
		conn, err := roundTrip(addr, clientCfg)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		conn.Close()
		if r := <-results; r.err != nil || r.id != (Identity{"w1", RoleWorker}) {
			errs = append(errs, fmt.Errorf("server saw %v, %v", r.id, r.err))
		}
	}
	cancel()
	swaps.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("connections during swaps failed: %v", err)
	}
	if err := echo(conn1); err != nil {
		t.Fatalf("first connection broke: %v", err)
	}
}

func TestCertStoreFiles(t *testing.T) {
	c := newTestCA(t, 1, "a")
	s := issueStore(t, c, Identity{"w1", RoleWorker}, 0, t0)
	dir := t.TempDir()
	if err := s.Save(dir); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadCertStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Leaf().Equal(s.Leaf()) {
		t.Fatal("loaded certificate differs")
	}
	other := issueStore(t, c, Identity{"w2", RoleWorker}, 0, t0)
	certPEM, _ := s.PEM()
	_, otherKey := other.PEM()
	if err := s.Swap(certPEM, otherKey); err == nil {
		t.Fatal("Swap with a key that does not match: want error")
	}
	if id, _ := s.Identity(); id.NodeID != "w1" {
		t.Fatalf("failed Swap changed the store to %v", id)
	}
}
