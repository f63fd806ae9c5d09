package raftnode

import (
	"context"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// streamLayer adapts a listener and a dial function to raft.StreamLayer.
type streamLayer struct {
	net.Listener
	advertise net.Addr
	dial      func(ctx context.Context, address string) (net.Conn, error)
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
	return &streamLayer{Listener: ln, advertise: advertise, dial: dial}
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
