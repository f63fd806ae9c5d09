package ca

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const (
	// CAValidity is the lifetime of a cluster root. Rotating the root means
	// re-issuing every node certificate, so it is long.
	CAValidity = 10 * 365 * 24 * time.Hour
	// KEKSize is the size in bytes of a key-encryption key (AES-256).
	KEKSize = 32
	// KEKFile is the KEK's file name in a manager's data directory.
	KEKFile = "ca.kek"

	caCommonName       = "warren-ca"
	pemCertificate     = "CERTIFICATE"
	pemEncryptedCAKey  = "WARREN ENCRYPTED CA KEY"
	encryptedKeyFormat = "aes-256-gcm/pkcs8/v1"
)

// digestEncoding renders a SHA-256 as 52 lower-case base32 characters: short
// enough to paste, and free of '-' so it can sit inside a join token.
var digestEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// DigestLen is the length of a CA digest as returned by Digest.
const DigestLen = 52

// CA is the cluster's certificate authority. A CA loaded with LoadVerifier
// (workers, joiners) has no key: it can verify but not sign.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
	digest  string
	pool    *x509.CertPool
}

// NewCA creates a self-signed ECDSA P-256 root valid for CAValidity from now.
// The cluster ID goes into the subject's organisation so an operator can tell
// clusters apart when inspecting a certificate.
func NewCA(now time.Time, rnd io.Reader, clusterID string) (*CA, error) {
	if clusterID == "" {
		return nil, errors.New("new ca: empty cluster id")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rnd)
	if err != nil {
		return nil, fmt.Errorf("new ca: generate key: %w", err)
	}
	serial, err := newSerial(rnd)
	if err != nil {
		return nil, fmt.Errorf("new ca: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: caCommonName, Organization: []string{clusterID}},
		// Backdated a little so a node whose clock lags the manager's still
		// accepts a freshly created cluster.
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// Path length 0: the root signs leaves directly, never another CA.
		MaxPathLen:     0,
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rnd, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("new ca: create certificate: %w", err)
	}
	c, err := newCA(der)
	if err != nil {
		return nil, fmt.Errorf("new ca: %w", err)
	}
	c.key = key
	return c, nil
}

// LoadVerifier loads a CA certificate without its key, for nodes that only
// need to verify peers.
func LoadVerifier(certPEM []byte) (*CA, error) {
	block, rest := pem.Decode(certPEM)
	if block == nil || block.Type != pemCertificate {
		return nil, errors.New("load ca: no CERTIFICATE pem block")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("load ca: trailing data after the CA certificate")
	}
	c, err := newCA(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("load ca: %w", err)
	}
	return c, nil
}

// LoadCA loads a CA certificate and decrypts its key with the KEK.
func LoadCA(certPEM, encryptedKey, kek []byte) (*CA, error) {
	c, err := LoadVerifier(certPEM)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(encryptedKey)
	if block == nil || block.Type != pemEncryptedCAKey {
		return nil, fmt.Errorf("load ca: no %s pem block", pemEncryptedCAKey)
	}
	if f := block.Headers["Format"]; f != encryptedKeyFormat {
		return nil, fmt.Errorf("load ca: unsupported key format %q", f)
	}
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, fmt.Errorf("load ca: %w", err)
	}
	if len(block.Bytes) < aead.NonceSize() {
		return nil, errors.New("load ca: encrypted key too short")
	}
	nonce, sealed := block.Bytes[:aead.NonceSize()], block.Bytes[aead.NonceSize():]
	der, err := aead.Open(nil, nonce, sealed, c.aad())
	if err != nil {
		return nil, fmt.Errorf("load ca: decrypt key (wrong key-encryption key, or the key belongs to another CA certificate): %w", err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("load ca: parse key: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("load ca: key is %T, want ECDSA", k)
	}
	if !key.PublicKey.Equal(c.cert.PublicKey) {
		return nil, errors.New("load ca: key does not match the CA certificate")
	}
	c.key = key
	return c, nil
}

func newCA(der []byte) (*CA, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, errors.New("certificate is not a CA")
	}
	if _, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok {
		return nil, fmt.Errorf("CA public key is %T, want ECDSA", cert.PublicKey)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{
		cert:    cert,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der}),
		digest:  digestDER(der),
		pool:    pool,
	}, nil
}

func digestDER(der []byte) string {
	sum := sha256.Sum256(der)
	return digestEncoding.EncodeToString(sum[:])
}

// CertPEM returns the CA certificate in PEM form.
func (c *CA) CertPEM() []byte { return bytes.Clone(c.certPEM) }

// Cert returns the parsed CA certificate. Callers must not modify it.
func (c *CA) Cert() *x509.Certificate { return c.cert }

// Digest is the SHA-256 of the CA certificate's DER, 52 lower-case base32
// characters. Join tokens carry it so a joining node can pin the CA.
func (c *CA) Digest() string { return c.digest }

// Pool returns a pool holding only this CA, for verifying peers.
func (c *CA) Pool() *x509.CertPool { return c.pool.Clone() }

// CanSign reports whether the CA holds its private key.
func (c *CA) CanSign() bool { return c.key != nil }

// aad binds the encrypted key to this exact certificate: a key blob moved
// next to a different certificate fails to decrypt rather than loading a
// mismatched pair.
func (c *CA) aad() []byte {
	return append([]byte(encryptedKeyFormat+"\x00"), c.cert.Raw...)
}

// EncryptedKey returns the CA key sealed with AES-256-GCM under kek, as a
// PEM block fit for api.ClusterCA.EncryptedKeyPEM.
func (c *CA) EncryptedKey(kek []byte, rnd io.Reader) ([]byte, error) {
	if c.key == nil {
		return nil, errors.New("encrypt ca key: CA has no key (verifier only)")
	}
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, fmt.Errorf("encrypt ca key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		return nil, fmt.Errorf("encrypt ca key: marshal: %w", err)
	}
	// A random 96-bit nonce is safe here: the key is re-encrypted a handful
	// of times in a cluster's life, far from the birthday bound.
	nonce := make([]byte, aead.NonceSize())
	if _, err := io.ReadFull(rnd, nonce); err != nil {
		return nil, fmt.Errorf("encrypt ca key: nonce: %w", err)
	}
	sealed := aead.Seal(nonce, nonce, der, c.aad())
	clear(der)
	return pem.EncodeToMemory(&pem.Block{
		Type:    pemEncryptedCAKey,
		Headers: map[string]string{"Format": encryptedKeyFormat},
		Bytes:   sealed,
	}), nil
}

func newAEAD(kek []byte) (cipher.AEAD, error) {
	if len(kek) != KEKSize {
		return nil, fmt.Errorf("key-encryption key has %d bytes, want %d", len(kek), KEKSize)
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// NewKEK returns a fresh key-encryption key. It returns an error rather than
// panicking when the reader fails: a short key must never be used.
func NewKEK(rnd io.Reader) ([]byte, error) {
	kek := make([]byte, KEKSize)
	if _, err := io.ReadFull(rnd, kek); err != nil {
		return nil, fmt.Errorf("new kek: %w", err)
	}
	return kek, nil
}

// SaveKEK writes the KEK to dir/KEKFile with mode 0600.
func SaveKEK(dir string, kek []byte) error {
	if len(kek) != KEKSize {
		return fmt.Errorf("save kek: %d bytes, want %d", len(kek), KEKSize)
	}
	if err := writeFileAtomic(filepath.Join(dir, KEKFile), kek); err != nil {
		return fmt.Errorf("save kek: %w", err)
	}
	return nil
}

// LoadKEK reads dir/KEKFile. It refuses a file that others can read: a KEK
// that leaked is as good as the CA key.
func LoadKEK(dir string) ([]byte, error) {
	p := filepath.Join(dir, KEKFile)
	if err := checkPrivate(p); err != nil {
		return nil, fmt.Errorf("load kek: %w", err)
	}
	kek, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("load kek: %w", err)
	}
	if len(kek) != KEKSize {
		return nil, fmt.Errorf("load kek: %s has %d bytes, want %d", p, len(kek), KEKSize)
	}
	return kek, nil
}

func checkPrivate(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	return nil
}

// writeFileAtomic writes via a temporary file and rename so a crash never
// leaves a half-written key behind.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// newSerial returns a positive 128-bit serial number; random serials keep
// two certificates issued in the same second by different managers apart.
func newSerial(rnd io.Reader) (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	b[0] &= 0x7f
	b[0] |= 0x40 // never a short serial, so its DER length is constant
	return new(big.Int).SetBytes(b), nil
}

// equalDigest compares digests in constant time after normalising case, so
// an operator who upper-cased a token by hand is not rejected.
func equalDigest(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(strings.ToLower(a)), []byte(strings.ToLower(b))) == 1
}
