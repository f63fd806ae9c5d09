package ca

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

const (
	// CertFile and KeyFile are the node's certificate and key in its data
	// directory.
	CertFile = "node.crt"
	KeyFile  = "node.key"
)

// CertStore holds a node's current key and certificate. TLS configs read it
// through GetCertificate / GetClientCertificate on every handshake, so after
// Swap new connections use the renewed certificate while open connections
// carry on undisturbed.
type CertStore struct {
	mu      sync.RWMutex
	cert    *tls.Certificate
	certPEM []byte
	keyPEM  []byte
}

// NewCertStore parses a certificate (optionally followed by its chain) and
// the matching private key.
func NewCertStore(certPEM, keyPEM []byte) (*CertStore, error) {
	s := &CertStore{}
	if err := s.Swap(certPEM, keyPEM); err != nil {
		return nil, fmt.Errorf("new cert store: %w", err)
	}
	return s, nil
}

// Swap replaces the key and certificate atomically. A pair that does not
// match is refused and the old one kept.
func (s *CertStore) Swap(certPEM, keyPEM []byte) error {
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("swap certificate: %w", err)
	}
	if c.Leaf == nil {
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			return fmt.Errorf("swap certificate: %w", err)
		}
		c.Leaf = leaf
	}
	s.mu.Lock()
	s.cert, s.certPEM, s.keyPEM = &c, bytes.Clone(certPEM), bytes.Clone(keyPEM)
	s.mu.Unlock()
	return nil
}

// Leaf returns the current certificate. Callers must not modify it.
func (s *CertStore) Leaf() *x509.Certificate {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cert.Leaf
}

// Identity returns the identity of the current certificate.
func (s *CertStore) Identity() (Identity, error) { return IdentityFromCert(s.Leaf()) }

// PEM returns the current certificate and key.
func (s *CertStore) PEM() (certPEM, keyPEM []byte) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return bytes.Clone(s.certPEM), bytes.Clone(s.keyPEM)
}

// current is what a handshake uses. The *tls.Certificate is never mutated
// after Swap, so sharing it with crypto/tls is safe.
func (s *CertStore) current() *tls.Certificate {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cert
}

// Save writes the certificate and key to dir (CertFile, KeyFile), mode 0600.
// The key is written first: a crash in between leaves a new key with an old
// certificate, which LoadCertStore rejects loudly instead of half-working.
func (s *CertStore) Save(dir string) error {
	certPEM, keyPEM := s.PEM()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save certificate: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, KeyFile), keyPEM); err != nil {
		return fmt.Errorf("save certificate: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, CertFile), certPEM); err != nil {
		return fmt.Errorf("save certificate: %w", err)
	}
	return nil
}

// LoadCertStore reads what Save wrote. It refuses a key file others can read.
func LoadCertStore(dir string) (*CertStore, error) {
	keyPath := filepath.Join(dir, KeyFile)
	if err := checkPrivate(keyPath); err != nil {
		return nil, fmt.Errorf("load certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("load certificate: %w", err)
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, CertFile))
	if err != nil {
		return nil, fmt.Errorf("load certificate: %w", err)
	}
	s, err := NewCertStore(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load certificate from %s: %w", dir, err)
	}
	return s, nil
}

var errNoStore = errors.New("no certificate store configured")

// TLSCertificate is the current key pair, for a tls.Config's
// GetCertificate or GetClientCertificate; a Swap is seen by the next
// handshake without re-parsing anything.
func (s *CertStore) TLSCertificate() *tls.Certificate { return s.current() }
