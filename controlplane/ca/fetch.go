package ca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"time"
)

// ErrCAMismatch is returned by FetchCA when the server does not present a CA
// with the pinned digest.
var ErrCAMismatch = errors.New("ca pinning: the server's CA does not match the join token (wrong cluster, or someone in between)")

// FetchCA learns the cluster CA from a manager at addr, trusting nothing but
// expectedDigest (from the join token). It is the only place where Warren
// dials without verifying the server the usual way, and it sends nothing:
// the pin is checked inside the TLS handshake, before any application data
// could be written, so a join token's secret never reaches a server that
// fails it. The returned CA has no key.
func FetchCA(ctx context.Context, addr string, expectedDigest string) (*CA, error) {
	return fetchCA(ctx, addr, expectedDigest, time.Now)
}

// fetchCA takes the clock so tests can use certificates made at a fixed time.
func fetchCA(ctx context.Context, addr, expectedDigest string, now func() time.Time) (*CA, error) {
	if !isDigest(expectedDigest) {
		return nil, fmt.Errorf("fetch ca: expected digest must be %d base32 characters", DigestLen)
	}
	var pinned *x509.Certificate
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The normal verification cannot work: we do not have the CA yet.
		// VerifyConnection below replaces it with the pin, then verifies the
		// chain against the pinned CA.
		InsecureSkipVerify: true,
		Time:               now,
		VerifyConnection: func(cs tls.ConnectionState) error {
			ca, err := pinCA(cs.PeerCertificates, expectedDigest, now())
			if err != nil {
				return err
			}
			pinned = ca
			return nil
		},
	}
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("fetch ca from %s: %w", addr, err)
	}
	conn.Close()
	if pinned == nil {
		return nil, fmt.Errorf("fetch ca from %s: handshake finished without a pinned CA", addr)
	}
	ca, err := LoadVerifier(pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: pinned.Raw}))
	if err != nil {
		return nil, fmt.Errorf("fetch ca from %s: %w", addr, err)
	}
	return ca, nil
}

// pinCA finds the certificate in the presented chain whose digest is the
// pinned one, then checks that the leaf is a manager certificate issued by
// it. Matching the digest alone is not enough: the CA certificate is public,
// so anyone can present it next to a leaf of their own.
func pinCA(chain []*x509.Certificate, expectedDigest string, now time.Time) (*x509.Certificate, error) {
	if len(chain) < 2 {
		return nil, fmt.Errorf("%w: server presented %d certificates, want leaf and CA", ErrCAMismatch, len(chain))
	}
	var ca *x509.Certificate
	for _, c := range chain[1:] {
		if equalDigest(digestDER(c.Raw), expectedDigest) {
			ca = c
			break
		}
	}
	if ca == nil {
		return nil, fmt.Errorf("%w: want %s, server presented %s", ErrCAMismatch, expectedDigest, digestDER(chain[len(chain)-1].Raw))
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := chain[0].Verify(x509.VerifyOptions{
		Roots:       roots,
		DNSName:     ManagerServerName,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return nil, fmt.Errorf("%w: server certificate does not chain to the pinned CA: %w", ErrCAMismatch, err)
	}
	return ca, nil
}
