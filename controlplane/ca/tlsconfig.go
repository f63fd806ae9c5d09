package ca

import (
	"crypto/tls"
	"errors"
	"fmt"
)

// ALPN protocol names on the manager port. Raft and the HTTPS API share
// :2377; the listener dispatches on the negotiated protocol.
const (
	ALPNRaft  = "warren-raft"
	ALPNHTTP2 = "h2"
	ALPNHTTP1 = "http/1.1"
)

// ServerConfig is the manager port's TLS config: TLS 1.3 only, client
// certificates verified against the cluster CA when presented.
//
// A client certificate is optional because the join route must be reachable
// by a node that has none yet; every other route is authorised by the API
// server from IdentityFromConn. A certificate that is presented but does not
// verify (another cluster, expired) fails the handshake: it is never
// downgraded to an anonymous connection. Raft is stricter and is enforced
// here: a connection that negotiates ALPNRaft must present a manager
// certificate.
//
// The server presents its leaf followed by the CA certificate so that a
// joining node can pin the CA by digest (FetchCA).
func ServerConfig(ca *CA, certs *CertStore) *tls.Config {
	caDER := ca.cert.Raw
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  ca.Pool(),
		NextProtos: []string{ALPNRaft, ALPNHTTP2, ALPNHTTP1},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if certs == nil {
				return nil, errNoStore
			}
			c := certs.current()
			if len(c.Certificate) == 1 {
				// Build a copy rather than appending in place: the stored
				// certificate is shared between handshakes.
				withCA := *c
				withCA.Certificate = [][]byte{c.Certificate[0], caDER}
				return &withCA, nil
			}
			return c, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if cs.NegotiatedProtocol != ALPNRaft {
				return nil
			}
			if _, err := RequireRole(cs, RoleManager); err != nil {
				return fmt.Errorf("raft: %w", err)
			}
			return nil
		},
	}
}

// ClientConfig is for API clients (agents, the CLI, managers calling each
// other). It trusts only the cluster CA and checks that the server holds a
// manager certificate (serverName is normally ManagerServerName). certs may
// be nil for a client without a certificate yet (a node joining).
//
// NextProtos is left empty: net/http adds "h2" and "http/1.1" itself when
// HTTP/2 is enabled on the transport, and announcing h2 on a transport that
// cannot speak it would break the connection.
func ClientConfig(ca *CA, certs *CertStore, serverName string) *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    ca.Pool(),
		ServerName: serverName,
	}
	if certs != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return certs.current(), nil
		}
	}
	return cfg
}

// RaftClientConfig is for a manager dialling another manager's raft
// transport. It requires that the peer is a manager and that it agreed to
// speak raft, so a peer that does not know the protocol fails at the
// handshake instead of receiving raft frames over HTTP.
func RaftClientConfig(ca *CA, certs *CertStore) *tls.Config {
	cfg := ClientConfig(ca, certs, ManagerServerName)
	cfg.NextProtos = []string{ALPNRaft}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if cs.NegotiatedProtocol != ALPNRaft {
			return errors.New("raft: peer did not negotiate " + ALPNRaft)
		}
		return nil
	}
	return cfg
}
