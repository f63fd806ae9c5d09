package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// Role is what a certificate lets its holder do. Managers and workers are
// nodes (api.NodeRole); admin is the operator's CLI certificate written by
// `warren cluster init`.
type Role string

const (
	RoleManager Role = Role(api.RoleManager)
	RoleWorker  Role = Role(api.RoleWorker)
	RoleAdmin   Role = "admin"
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	switch r {
	case RoleManager, RoleWorker, RoleAdmin:
		return true
	}
	return false
}

const (
	// DefaultNodeCertTTL is the lifetime of node and admin certificates
	// unless the cluster configures another (api.Cluster.NodeCertTTL).
	DefaultNodeCertTTL = 90 * 24 * time.Hour
	// ManagerServerName is the DNS name every manager certificate carries.
	// Clients verify it instead of a host name: managers are reached by IP
	// and the CA cannot know their addresses, but only the CA decides who
	// gets a manager certificate.
	ManagerServerName = "warren-manager"

	// clockSkew backdates NotBefore so a node whose clock lags slightly still
	// accepts a certificate issued just now.
	clockSkew = 5 * time.Minute
	maxNodeID = 128
)

// Identity is who a verified certificate speaks for.
type Identity struct {
	NodeID string
	Role   Role
}

func (id Identity) validate() error {
	if id.NodeID == "" {
		return errors.New("empty node id")
	}
	if len(id.NodeID) > maxNodeID {
		return fmt.Errorf("node id longer than %d bytes", maxNodeID)
	}
	for _, r := range id.NodeID {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
		if !ok {
			return fmt.Errorf("node id %q: only letters, digits, '-', '_' and '.' are allowed", id.NodeID)
		}
	}
	if !id.Role.Valid() {
		return fmt.Errorf("unknown role %q", id.Role)
	}
	return nil
}

// NewNodeKey creates a node's ECDSA P-256 private key. It never leaves the
// node; only CSRs made with it do.
func NewNodeKey(rnd io.Reader) (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rnd)
	if err != nil {
		return nil, fmt.Errorf("new node key: %w", err)
	}
	return k, nil
}

// MarshalKeyPEM encodes a private key as PKCS#8 PEM.
func MarshalKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// NewCSR makes a certificate request signed by key. The subject is only a
// hint for humans reading logs: Sign ignores it.
func NewCSR(key crypto.Signer, nodeID string, rnd io.Reader) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rnd, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: nodeID},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("new csr: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// Sign issues a certificate for the CSR's public key. The subject (CN = node
// ID, OU = role), SANs and key usages come from id, which the caller took
// from the cluster state after authenticating the request — never from the
// CSR. The CSR only proves possession of the key. ttl 0 means
// DefaultNodeCertTTL; the certificate never outlives the CA.
func (c *CA) Sign(csrPEM []byte, id Identity, ttl time.Duration, now time.Time, rnd io.Reader) ([]byte, error) {
	if c.key == nil {
		return nil, errors.New("sign: CA has no key (verifier only)")
	}
	if err := id.validate(); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("sign: no CERTIFICATE REQUEST pem block")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("sign: parse csr: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("sign: csr signature: %w", err)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("sign: csr key is %T, want ECDSA P-256", csr.PublicKey)
	}
	return c.sign(pub, id, ttl, now, rnd)
}

// Issue creates a key and a certificate for id in one step. It is for the
// process that holds the CA itself: the first manager at `cluster init`
// (its own certificate and the operator's admin certificate).
func (c *CA) Issue(id Identity, ttl time.Duration, now time.Time, rnd io.Reader) (certPEM, keyPEM []byte, err error) {
	if c.key == nil {
		return nil, nil, errors.New("issue: CA has no key (verifier only)")
	}
	if err := id.validate(); err != nil {
		return nil, nil, fmt.Errorf("issue: %w", err)
	}
	key, err := NewNodeKey(rnd)
	if err != nil {
		return nil, nil, err
	}
	certPEM, err = c.sign(&key.PublicKey, id, ttl, now, rnd)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = MarshalKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return certPEM, keyPEM, nil
}

func (c *CA) sign(pub *ecdsa.PublicKey, id Identity, ttl time.Duration, now time.Time, rnd io.Reader) ([]byte, error) {
	if ttl == 0 {
		ttl = DefaultNodeCertTTL
	}
	if ttl < 0 {
		return nil, fmt.Errorf("sign: negative ttl %v", ttl)
	}
	notAfter := now.Add(ttl)
	if notAfter.After(c.cert.NotAfter) {
		notAfter = c.cert.NotAfter
	}
	if !now.Before(notAfter) {
		return nil, errors.New("sign: CA certificate has expired")
	}
	serial, err := newSerial(rnd)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         id.NodeID,
			OrganizationalUnit: []string{string(id.Role)},
			Organization:       c.cert.Subject.Organization, // cluster ID
		},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	switch id.Role {
	case RoleManager:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		tmpl.DNSNames = []string{ManagerServerName}
	default:
		// Workers and admins only ever dial managers; without ServerAuth and
		// the manager name they cannot pose as one.
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rnd, tmpl, c.cert, pub, c.key)
	if err != nil {
		return nil, fmt.Errorf("sign: create certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der}), nil
}

// IdentityFromCert reads the node ID and role from a certificate. It does
// not verify the certificate: pass only certificates from a verified chain.
func IdentityFromCert(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, errors.New("identity: no certificate")
	}
	if len(cert.Subject.OrganizationalUnit) != 1 {
		return Identity{}, fmt.Errorf("identity: certificate has %d roles (OU), want 1", len(cert.Subject.OrganizationalUnit))
	}
	id := Identity{NodeID: cert.Subject.CommonName, Role: Role(cert.Subject.OrganizationalUnit[0])}
	if err := id.validate(); err != nil {
		return Identity{}, fmt.Errorf("identity: %w", err)
	}
	return id, nil
}

// IdentityFromConn returns the identity of a TLS peer whose certificate was
// verified against the cluster CA during the handshake. It returns false for
// a connection without a verified client certificate (the join route).
func IdentityFromConn(cs tls.ConnectionState) (Identity, bool) {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return Identity{}, false
	}
	id, err := IdentityFromCert(cs.VerifiedChains[0][0])
	if err != nil {
		return Identity{}, false
	}
	return id, true
}

// ErrForbidden is returned by RequireRole for an unauthenticated peer or a
// peer with the wrong role.
var ErrForbidden = errors.New("forbidden")

// RequireRole returns the peer's identity if its verified certificate has
// one of roles.
func RequireRole(cs tls.ConnectionState, roles ...Role) (Identity, error) {
	id, ok := IdentityFromConn(cs)
	if !ok {
		return Identity{}, fmt.Errorf("%w: no verified client certificate", ErrForbidden)
	}
	for _, r := range roles {
		if id.Role == r {
			return id, nil
		}
	}
	return id, fmt.Errorf("%w: %s %s may not do this (need %v)", ErrForbidden, id.Role, id.NodeID, roles)
}
