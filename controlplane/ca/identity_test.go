package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"slices"
	"strings"
	"testing"
	"time"
)

// greedyCSR asks for everything a node should not be able to get: another
// node's name, the manager role and the manager server name.
func greedyCSR(t *testing.T, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rng(9), &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: "someone-else", OrganizationalUnit: []string{"manager", "admin"}},
		DNSNames: []string{ManagerServerName, "evil.example"},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestSignDecidesSubject(t *testing.T) {
	c := newTestCA(t, 1, "cluster-a")
	key, err := NewNodeKey(rng(2))
	if err != nil {
		t.Fatal(err)
	}
	csr := greedyCSR(t, key)
	tests := []struct {
		id         Identity
		wantSAN    []string
		wantServer bool
	}{
		{Identity{"w1", RoleWorker}, nil, false},
		{Identity{"m1", RoleManager}, []string{ManagerServerName}, true},
		{Identity{"ops", RoleAdmin}, nil, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.id.Role), func(t *testing.T) {
			certPEM, err := c.Sign(csr, tt.id, 0, t0, rng(3))
			if err != nil {
				t.Fatal(err)
			}
			block, _ := pem.Decode(certPEM)
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			got, err := IdentityFromCert(cert)
			if err != nil || got != tt.id {
				t.Fatalf("IdentityFromCert = %v, %v; want %v", got, err, tt.id)
			}
			if !slices.Equal(cert.DNSNames, tt.wantSAN) {
				t.Errorf("DNSNames = %v, want %v (the CSR's names must be ignored)", cert.DNSNames, tt.wantSAN)
			}
			if has := slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth); has != tt.wantServer {
				t.Errorf("ServerAuth = %v, want %v", has, tt.wantServer)
			}
			if !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
				t.Error("no ClientAuth usage")
			}
			if !cert.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
				t.Error("certificate is not for the CSR's key")
			}
			if got, want := cert.NotAfter, t0.Add(DefaultNodeCertTTL); !got.Equal(want) {
				t.Errorf("NotAfter = %v, want default TTL %v", got, want)
			}
			if err := cert.CheckSignatureFrom(c.Cert()); err != nil {
				t.Errorf("not signed by the CA: %v", err)
			}
		})
	}
}

func TestSignRejects(t *testing.T) {
	c := newTestCA(t, 1, "a")
	key, _ := NewNodeKey(rng(2))
	good, _ := NewCSR(key, "n1", rng(3))
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rng(4))
	csr384, _ := NewCSR(p384, "n1", rng(5))
	block, _ := pem.Decode(good)
	block.Bytes[len(block.Bytes)-3] ^= 0xff // break the signature
	badSig := pem.EncodeToMemory(block)
	worker := Identity{NodeID: "n1", Role: RoleWorker}

	tests := []struct {
		name    string
		csr     []byte
		id      Identity
		ttl     time.Duration
		wantErr string
	}{
		{"empty node id", good, Identity{Role: RoleWorker}, 0, "empty node id"},
		{"unknown role", good, Identity{NodeID: "n1", Role: "root"}, 0, "unknown role"},
		{"node id with slash", good, Identity{NodeID: "n1/../x", Role: RoleWorker}, 0, "only letters"},
		{"node id too long", good, Identity{NodeID: strings.Repeat("a", 129), Role: RoleWorker}, 0, "longer than"},
		{"not pem", []byte("nope"), worker, 0, "CERTIFICATE REQUEST"},
		{"bad signature", badSig, worker, 0, "csr"},
		{"P-384 key", csr384, worker, 0, "P-256"},
		{"negative ttl", good, worker, -time.Hour, "negative ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Sign(tt.csr, tt.id, tt.ttl, t0, rng(6))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Sign err = %v, want containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestSignNeverOutlivesCA(t *testing.T) {
	c := newTestCA(t, 1, "a")
	key, _ := NewNodeKey(rng(2))
	csr, _ := NewCSR(key, "n1", rng(3))
	now := c.Cert().NotAfter.Add(-time.Hour)
	certPEM, err := c.Sign(csr, Identity{NodeID: "n1", Role: RoleWorker}, 0, now, rng(4))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	cert, _ := x509.ParseCertificate(block.Bytes)
	if !cert.NotAfter.Equal(c.Cert().NotAfter) {
		t.Errorf("NotAfter = %v, want clamped to CA's %v", cert.NotAfter, c.Cert().NotAfter)
	}
	if _, err := c.Sign(csr, Identity{NodeID: "n1", Role: RoleWorker}, 0, c.Cert().NotAfter, rng(5)); err == nil {
		t.Error("Sign after the CA expired: want error")
	}
}

func TestIdentityFromCert(t *testing.T) {
	tests := []struct {
		name    string
		subject pkix.Name
		want    Identity
		wantErr bool
	}{
		{"worker", pkix.Name{CommonName: "n1", OrganizationalUnit: []string{"worker"}}, Identity{"n1", RoleWorker}, false},
		{"admin", pkix.Name{CommonName: "ops", OrganizationalUnit: []string{"admin"}}, Identity{"ops", RoleAdmin}, false},
		{"no role", pkix.Name{CommonName: "n1"}, Identity{}, true},
		{"two roles", pkix.Name{CommonName: "n1", OrganizationalUnit: []string{"worker", "manager"}}, Identity{}, true},
		{"unknown role", pkix.Name{CommonName: "n1", OrganizationalUnit: []string{"root"}}, Identity{}, true},
		{"no node id", pkix.Name{OrganizationalUnit: []string{"worker"}}, Identity{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := IdentityFromCert(&x509.Certificate{Subject: tt.subject})
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("IdentityFromCert = %v, %v; want %v, err=%v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	if _, err := IdentityFromCert(nil); err == nil {
		t.Error("IdentityFromCert(nil): want error")
	}
}
