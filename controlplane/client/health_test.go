package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// silentProxy forwards TCP to a backend until cut, then forwards nothing
// while keeping every connection open: a link that drops packets without
// a reset, as a cut WAN link does.
type silentProxy struct {
	l        net.Listener
	backend  string
	accepted atomic.Int32
	mu       sync.Mutex
	cut      bool
	held     int // reads held back by a cut
}

func (p *silentProxy) stalledReads() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

func newSilentProxy(t *testing.T, backend string) *silentProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &silentProxy{l: l, backend: backend}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			b, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); b.Close() })
			go p.pipe(c, b)
			go p.pipe(b, c)
		}
	}()
	return p
}

// pipe copies src to dst, holding every read's bytes back while the
// proxy is cut — a connection that went silent stays silent.
func (p *silentProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	dead := false
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		if p.cut {
			dead = true
		}
		if dead && n > 0 {
			p.held++
		}
		p.mu.Unlock()
		if !dead && n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// behindSilentProxy is a client of an HTTP/2 server that answers every
// call with {}, reached through a silentProxy, its connections pinged
// after pingAfter of silence.
func behindSilentProxy(t *testing.T, pingAfter time.Duration) (*Client, *silentProxy) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	p := newSilentProxy(t, srv.Listener.Addr().String())
	c, err := New(Config{Addrs: []string{p.l.Addr().String()}, TLS: &tls.Config{RootCAs: pool, ServerName: "example.com"}, PingAfter: pingAfter})
	if err != nil {
		t.Fatal(err)
	}
	return c, p
}

func (p *silentProxy) setCut(cut bool) {
	p.mu.Lock()
	p.cut = cut
	p.mu.Unlock()
}

// A call after a silent cut heals must not wait on the connection that
// went silent: its health check closes it, and the call dials afresh.
// Without health checks, HTTP/2 keeps sending every call down the dead
// connection (here: forever; over a real link: until TCP's backed-off
// retransmission, minutes after a long cut).
func TestSilentConnectionReplaced(t *testing.T) {
	c, p := behindSilentProxy(t, 100*time.Millisecond)
	ctx := context.Background()
	if _, err := c.Tables(ctx); err != nil {
		t.Fatalf("before the cut: %v", err)
	}
	if got := p.accepted.Load(); got != 1 {
		t.Fatalf("%d connections before the cut, want 1", got)
	}
	p.setCut(true)
	// A call during the cut fails once the connection's ping goes
	// unanswered, well before its own 30 s timeout.
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := c.Tables(cctx); err == nil {
		t.Fatal("a call through the silent link succeeded")
	} else if cctx.Err() != nil {
		t.Fatalf("the call through the silent link waited for its deadline: the connection was never health-checked (%v)", err)
	}
	// Healed: the next call dials a new connection, which the proxy
	// forwards (the silent one stays silent).
	p.setCut(false)
	hctx, hcancel := context.WithTimeout(ctx, 20*time.Second)
	defer hcancel()
	if _, err := c.Tables(hctx); err != nil {
		t.Fatalf("after the heal: %v", err)
	}
	if got := p.accepted.Load(); got < 2 {
		t.Fatalf("%d connections in all, want a new one after the cut", got)
	}
}

// Heartbeats are not streams of the calls' shared connection: one whose
// connection went silent holds up only itself, and the next gets through
// on a connection of its own while the rest of the client's calls are
// unaffected.
func TestHeartbeatsOnConnectionsOfTheirOwn(t *testing.T) {
	// Health checks far off: only the heartbeats' own connections can
	// get a beat through here.
	c, p := behindSilentProxy(t, time.Hour)
	ctx := context.Background()
	if err := c.Register(ctx, api.NodeRegistration{NodeID: "n1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Tables(ctx); err != nil {
		t.Fatal(err)
	}
	if got := p.accepted.Load(); got != 2 {
		t.Fatalf("%d connections for a heartbeat and a call, want 2 (one each)", got)
	}
	// Every connection open now goes silent; the stalled beat waits on
	// its own.
	p.setCut(true)
	stalled := make(chan error, 1)
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	go func() { stalled <- c.Register(sctx, api.NodeRegistration{NodeID: "n1"}) }()
	for p.stalledReads() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	p.setCut(false) // new connections go through again
	bctx, bcancel := context.WithTimeout(ctx, 20*time.Second)
	defer bcancel()
	if err := c.Register(bctx, api.NodeRegistration{NodeID: "n1"}); err != nil {
		t.Fatalf("a heartbeat behind a stalled one: %v", err)
	}
	select {
	case err := <-stalled:
		t.Fatalf("the stalled heartbeat ended (%v): it was not on the silent connection", err)
	default:
	}
	scancel()
	<-stalled
}
