package ca

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewCA(t *testing.T) {
	c := newTestCA(t, 1, "cluster-a")
	cert := c.Cert()
	if !cert.IsCA || !cert.MaxPathLenZero {
		t.Errorf("IsCA=%v MaxPathLenZero=%v, want a root that signs only leaves", cert.IsCA, cert.MaxPathLenZero)
	}
	if got, want := cert.NotAfter, t0.Add(CAValidity); !got.Equal(want.Truncate(1e9)) {
		t.Errorf("NotAfter = %v, want %v", got, want)
	}
	if got := cert.Subject.Organization; len(got) != 1 || got[0] != "cluster-a" {
		t.Errorf("Organization = %v, want [cluster-a]", got)
	}
	// The digest is recomputed independently from the PEM: sha256 of the DER.
	block, _ := pem.Decode(c.CertPEM())
	sum := sha256.Sum256(block.Bytes)
	want := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))
	if c.Digest() != want || len(c.Digest()) != DigestLen {
		t.Errorf("Digest = %q (%d chars), want %q (%d)", c.Digest(), len(c.Digest()), want, DigestLen)
	}
	if other := newTestCA(t, 2, "cluster-a"); other.Digest() == c.Digest() {
		t.Error("two CAs share a digest")
	}
	if _, err := NewCA(t0, rng(1), ""); err == nil {
		t.Error("NewCA with empty cluster id: want error")
	}
}

func TestEncryptedKeyRoundTrip(t *testing.T) {
	c := newTestCA(t, 1, "a")
	other := newTestCA(t, 2, "b")
	kek, err := NewKEK(rng(10))
	if err != nil {
		t.Fatal(err)
	}
	wrongKEK, _ := NewKEK(rng(11))
	enc, err := c.EncryptedKey(kek, rng(12))
	if err != nil {
		t.Fatal(err)
	}
	otherEnc, err := other.EncryptedKey(kek, rng(13))
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(enc)
	block, _ := pem.Decode(tampered)
	block.Bytes[len(block.Bytes)-1] ^= 1
	tampered = pem.EncodeToMemory(block)

	tests := []struct {
		name    string
		cert    []byte
		key     []byte
		kek     []byte
		wantErr string
	}{
		{"right kek", c.CertPEM(), enc, kek, ""},
		{"wrong kek", c.CertPEM(), enc, wrongKEK, "wrong key-encryption key"},
		{"short kek", c.CertPEM(), enc, kek[:16], "want 32"},
		{"key of another CA", c.CertPEM(), otherEnc, kek, "another CA certificate"},
		{"tampered ciphertext", c.CertPEM(), tampered, kek, "decrypt key"},
		{"not pem", c.CertPEM(), []byte("garbage"), kek, "pem block"},
		{"cert not pem", []byte("garbage"), enc, kek, "CERTIFICATE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadCA(tt.cert, tt.key, tt.kek)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadCA err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadCA: %v", err)
			}
			if !got.CanSign() || got.Digest() != c.Digest() {
				t.Fatalf("loaded CA: CanSign=%v digest=%s, want signing CA %s", got.CanSign(), got.Digest(), c.Digest())
			}
			// The loaded key really is the CA key: what it signs verifies
			// against the original CA.
			s := issueStore(t, got, Identity{NodeID: "n1", Role: RoleWorker}, 0, t0)
			if err := s.Leaf().CheckSignatureFrom(c.Cert()); err != nil {
				t.Fatalf("certificate from loaded CA does not verify: %v", err)
			}
		})
	}
}

func TestVerifierCannotSign(t *testing.T) {
	c := newTestCA(t, 1, "a")
	v, err := LoadVerifier(c.CertPEM())
	if err != nil {
		t.Fatal(err)
	}
	if v.CanSign() || v.Digest() != c.Digest() {
		t.Fatalf("verifier: CanSign=%v digest=%s", v.CanSign(), v.Digest())
	}
	key, _ := NewNodeKey(rng(2))
	csr, _ := NewCSR(key, "n1", rng(3))
	if _, err := v.Sign(csr, Identity{NodeID: "n1", Role: RoleWorker}, 0, t0, rng(4)); err == nil {
		t.Error("Sign with verifier: want error")
	}
	if _, err := v.EncryptedKey(make([]byte, KEKSize), rng(5)); err == nil {
		t.Error("EncryptedKey with verifier: want error")
	}
	leaf := issueStore(t, c, Identity{NodeID: "n1", Role: RoleWorker}, 0, t0).Leaf()
	if _, err := LoadVerifier(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})); err == nil {
		t.Error("LoadVerifier of a leaf certificate: want error")
	}
}

func TestKEKFile(t *testing.T) {
	dir := t.TempDir()
	kek, _ := NewKEK(rng(1))
	if err := SaveKEK(dir, kek); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, KEKFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("kek mode = %v, want 0600", fi.Mode().Perm())
	}
	got, err := LoadKEK(dir)
	if err != nil || !bytes.Equal(got, kek) {
		t.Fatalf("LoadKEK = %x, %v; want %x", got, err, kek)
	}
	if err := os.Chmod(filepath.Join(dir, KEKFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKEK(dir); err == nil {
		t.Error("LoadKEK of a world-readable file: want error")
	}
	if _, err := NewKEK(bytes.NewReader(make([]byte, 5))); err == nil {
		t.Error("NewKEK with a short reader: want error")
	}
}
