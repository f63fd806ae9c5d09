package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
)

// FuzzParseToken: a pasted join token of any text parses or fails with an
// error; a parsed one prints back in canonical form and reparses to itself,
// and is accepted only with the current secret of the role it joins as.
func FuzzParseToken(f *testing.F) {
	c := fuzzCA(f)
	worker, manager, stored, err := NewJoinTokens(c.Digest(), t0, rng(2))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{worker, manager, " " + manager + "\n", strings.ToUpper(worker), "",
		"SWMTKN-1-" + c.Digest() + "-abc", "WRN-2-" + c.Digest() + "-" + strings.Repeat("a", 26),
		"WRN-1--", "WRN-+1-" + c.Digest() + "-" + strings.Repeat("b", 40), "WRN-1-" + c.Digest() + "-" + strings.Repeat("é", 26)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			if tok != (Token{}) {
				t.Fatalf("ParseToken(%q) failed (%v) but returned %+v", s, err, tok)
			}
			return
		}
		again, err := ParseToken(tok.String())
		if err != nil || again != tok {
			t.Fatalf("ParseToken(%q) = %+v, its String %q reparses to %+v, %v", s, tok, tok.String(), again, err)
		}
		// The CA digest is the joiner's pin, checked by the joiner; the
		// manager's side is the secret, and only the current one of the role.
		for role, want := range map[api.NodeRole]string{api.RoleWorker: stored.WorkerHash, api.RoleManager: stored.ManagerHash} {
			err := CheckTokenHistory(tok, role, stored, []string{HashSecret("old")}, t0)
			if err == nil && HashSecret(tok.Secret) != want {
				t.Fatalf("%q accepted as %s without the %s secret", s, role, role)
			}
		}
	})
}

// FuzzSign: a CSR of any bytes (it arrives in the join and renew requests)
// is signed or refused; whatever is signed carries the caller's identity and
// the CSR's own P-256 key, never anything else the CSR asked for.
func FuzzSign(f *testing.F) {
	c := fuzzCA(f)
	key, err := NewNodeKey(rng(3))
	if err != nil {
		f.Fatal(err)
	}
	csr, err := NewCSR(key, "n1", rng(4))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(csr)
	block, _ := pem.Decode(csr)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: block.Bytes[:len(block.Bytes)-3]}))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes}))
	if k, err := ecdsa.GenerateKey(elliptic.P384(), rng(5)); err == nil {
		if der, err := x509.CreateCertificateRequest(rng(6), &x509.CertificateRequest{DNSNames: []string{"evil"}}, k); err == nil {
			f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
		}
	}
	if k, err := rsa.GenerateKey(rng(7), 1024); err == nil {
		if der, err := x509.CreateCertificateRequest(rng(8), &x509.CertificateRequest{}, k); err == nil {
			f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
		}
	}
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n"))
	id := Identity{NodeID: "n1", Role: RoleWorker}
	f.Fuzz(func(t *testing.T, csrPEM []byte) {
		certPEM, err := c.Sign(csrPEM, id, 0, t0, rng(9))
		if err != nil {
			return
		}
		b, _ := pem.Decode(certPEM)
		if b == nil {
			t.Fatal("signed certificate is not PEM")
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("signed certificate does not parse: %v", err)
		}
		got, err := IdentityFromCert(cert)
		if err != nil || got != id {
			t.Fatalf("signed identity = %+v, %v; want %+v", got, err, id)
		}
		pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			t.Fatalf("signed key %T, want ECDSA P-256", cert.PublicKey)
		}
		req, _ := pem.Decode(csrPEM)
		parsed, err := x509.ParseCertificateRequest(req.Bytes)
		if err != nil || !pub.Equal(parsed.PublicKey) {
			t.Fatalf("signed key is not the CSR's (%v)", err)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: c.Pool(), CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Fatalf("signed certificate does not verify: %v", err)
		}
		if len(parsed.DNSNames) > 0 && strings.Join(cert.DNSNames, ",") == strings.Join(parsed.DNSNames, ",") {
			t.Fatalf("CSR's SANs %v were copied", parsed.DNSNames)
		}
	})
}

// FuzzLoadVerifier: a CA certificate read from disk or from the join answer
// loads or fails; it never panics.
func FuzzLoadVerifier(f *testing.F) {
	c := fuzzCA(f)
	f.Add(c.CertPEM())
	f.Add(c.CertPEM()[:40])
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := LoadVerifier(data)
		if err != nil {
			return
		}
		if v.CanSign() {
			t.Fatal("a verifier loaded from a certificate can sign")
		}
		if _, err := v.Sign(nil, Identity{NodeID: "x", Role: RoleWorker}, 0, t0, rng(1)); err == nil {
			t.Fatal("verifier signed")
		}
	})
}

func fuzzCA(f *testing.F) *CA {
	c, err := NewCA(t0, rng(1), "a")
	if err != nil {
		f.Fatal(err)
	}
	return c
}
