// Package secretbox seals small secrets (join tokens, later service secrets)
// with the managers' key-encryption key before they enter raft, so the raft
// log and snapshots never hold them in clear.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
)

// Seal encrypts plaintext with AES-256-GCM under kek; aad binds the
// ciphertext to its purpose (e.g. "join-token/worker").
func Seal(kek, plaintext, aad []byte, rnd io.Reader) ([]byte, error) {
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := io.ReadFull(rnd, nonce); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	return aead.Seal(nonce, nonce, plaintext, aad), nil
}

// Open reverses Seal.
func Open(kek, sealed, aad []byte) ([]byte, error) {
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("open: sealed value too short")
	}
	n := aead.NonceSize()
	pt, err := aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, fmt.Errorf("open: %w (wrong key-encryption key?)", err)
	}
	return pt, nil
}

func newAEAD(kek []byte) (cipher.AEAD, error) {
	if len(kek) != 32 {
		return nil, fmt.Errorf("secretbox: key-encryption key must be 32 bytes, not %d", len(kek))
	}
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Purposes (additional authenticated data) of the secrets Warren seals.
var (
	AADWorkerToken  = []byte("warren/join-token/worker")
	AADManagerToken = []byte("warren/join-token/manager")
)
