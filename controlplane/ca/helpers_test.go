package ca

import (
	"io"
	"log"
	"math/rand/v2"
	"testing"
	"time"
)

// t0 is the fixed "now" of every test; nothing here reads the wall clock.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// rng is a deterministic randomness source.
func rng(seed uint64) io.Reader {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return rand.NewChaCha8(s)
}

func newTestCA(t *testing.T, seed uint64, clusterID string) *CA {
	t.Helper()
	c, err := NewCA(t0, rng(seed), clusterID)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return c
}

// issueStore issues a key and certificate for id valid from now for ttl.
func issueStore(t *testing.T, c *CA, id Identity, ttl time.Duration, now time.Time) *CertStore {
	t.Helper()
	certPEM, keyPEM, err := c.Issue(id, ttl, now, rng(uint64(len(id.NodeID))+uint64(now.Unix())))
	if err != nil {
		t.Fatalf("Issue(%v): %v", id, err)
	}
	s, err := NewCertStore(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("NewCertStore: %v", err)
	}
	return s
}

// newDiscardLogger silences the expected handshake errors of servers that
// tests reject on purpose.
func newDiscardLogger() *log.Logger { return log.New(io.Discard, "", 0) }
