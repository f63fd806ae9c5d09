package raftnode

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
)

// streamLayer adapts a listener and a dial function to raft.StreamLayer.
// It also remembers the raft connections it accepted and has not yet seen
// closed, so that a follower can tell when every connection from its leader
// is gone (see failover.go).
type streamLayer struct {
	net.Listener
	advertise net.Addr
	dial      func(ctx context.Context, address string) (net.Conn, error)

	mu      sync.Mutex
	inbound map[*inboundConn]struct{}
}

// inboundConn is an accepted raft connection that leaves its stream layer's
// set when it is closed. Raft's transport closes it when a read fails, which
// is at once when the peer's process dies and its kernel resets or closes
// the socket.
type inboundConn struct {
	net.Conn
	s    *streamLayer
	once sync.Once
}

func (c *inboundConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.inbound, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// peerID is the node ID in the certificate of the peer that opened c, and
// false while the handshake has not completed or when c is not mutual TLS.
func (c *inboundConn) peerID() (string, bool) {
	tc, ok := c.Conn.(*tls.Conn)
	if !ok {
		return "", false
	}
	// ConnectionState does not wait for the handshake; raft's transport
	// runs it on its first read.
	cs := tc.ConnectionState()
	if !cs.HandshakeComplete || len(cs.PeerCertificates) == 0 {
		return "", false
	}
	return cs.PeerCertificates[0].Subject.CommonName, true
}

// NewStreamLayer returns a raft.StreamLayer that accepts raft connections
// from ln and opens them with dial. Security is the caller's: in a manager,
// ln yields the mTLS connections negotiated with ALPN "warren-raft" on the
// shared port and dial performs the same handshake, so raft itself never sees
// an unauthenticated peer.
//
// advertise is the address peers use to reach this manager (it is what
// bootstrap writes into the raft configuration); nil means ln.Addr(). A nil
// dial uses plain TCP, which is only suitable for tests.
func NewStreamLayer(ln net.Listener, advertise net.Addr, dial func(ctx context.Context, address string) (net.Conn, error)) raft.StreamLayer {
	if dial == nil {
		var d net.Dialer
		dial = func(ctx context.Context, address string) (net.Conn, error) { return d.DialContext(ctx, "tcp", address) }
	}
	return &streamLayer{Listener: ln, advertise: advertise, dial: dial, inbound: make(map[*inboundConn]struct{})}
}

func (s *streamLayer) Accept() (net.Conn, error) {
	conn, err := s.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := &inboundConn{Conn: conn, s: s}
	s.mu.Lock()
	s.inbound[c] = struct{}{}
	s.mu.Unlock()
	return c, nil
}

// inboundFrom counts the open accepted connections that may come from the
// manager with node ID id. A connection whose peer is not known yet (its
// handshake is pending, or it is not mutual TLS) counts: when in doubt, the
// leader is taken to be still connected.
func (s *streamLayer) inboundFrom(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.inbound {
		if peer, ok := c.peerID(); !ok || peer == id {
			n++
		}
	}
	return n
}

// dialRefused dials address as raft would and reports whether the peer's
// host actively refused the connection: its port has no listener, so the
// manager's process is gone while its host is up. A timeout, an
// unreachable network or a failed handshake is not a refusal: those are
// what a partition or an overloaded peer look like.
func (s *streamLayer) dialRefused(address string, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := s.dial(ctx, address)
	if err == nil {
		_ = conn.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

func (s *streamLayer) Addr() net.Addr {
	if s.advertise != nil {
		return s.advertise
	}
	return s.Listener.Addr()
}

func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return s.dial(ctx, string(address))
}
