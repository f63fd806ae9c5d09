package secretbox

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The key hierarchy (docs/security.md):
//
//	unlock key (operator, only with autolock) ─wraps─▶ KEK (manager data dir)
//	KEK ─seals─▶ CA key, join tokens, DEK (all in raft)
//	DEK ─seals─▶ secret and config values (raft)
//	DEK ─derives─▶ one cache key per node (never stored; sent in assignments)
//
// The DEK exists so that a KEK change re-wraps one key instead of
// re-encrypting every value, and so that node cache keys can be derived
// from a key no node ever holds.

// KeySize is the size of every key here (AES-256, HMAC-SHA256).
const KeySize = 32

// Purposes of the keys Warren wraps.
var (
	AADDataKey = []byte("warren/data-key")
	AADKEK     = []byte("warren/kek")
)

// NewKey returns a fresh 32-byte key from rnd.
func NewKey(rnd io.Reader) ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := io.ReadFull(rnd, k); err != nil {
		return nil, fmt.Errorf("new key: %w", err)
	}
	return k, nil
}

// ValueAAD binds a sealed secret or config value to its kind and ID, so a
// sealed value copied onto another object does not open.
func ValueAAD(kind, id string) []byte { return []byte("warren/" + kind + "/" + id) }

// NodeCacheKey derives the key a node's agent seals its cached secrets
// with. It is a pure function of the DEK and the node ID: managers need not
// store it, each node gets a different one, and a node's key reveals
// neither the DEK nor another node's key.
func NodeCacheKey(dek []byte, nodeID string) []byte {
	m := hmac.New(sha256.New, dek)
	m.Write([]byte("warren/node-cache-key\x00"))
	m.Write([]byte(nodeID))
	return m.Sum(nil)
}

// UnlockKeyPrefix starts every unlock key, like Swarm's SWMKEY-1-.
const UnlockKeyPrefix = "WRNKEY-1-"

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// FormatUnlockKey renders a 32-byte unlock key for the operator.
func FormatUnlockKey(k []byte) string { return UnlockKeyPrefix + b32.EncodeToString(k) }

// ParseUnlockKey reverses FormatUnlockKey.
func ParseUnlockKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, UnlockKeyPrefix)
	if !ok {
		return nil, fmt.Errorf("unlock key: must start with %s", UnlockKeyPrefix)
	}
	k, err := b32.DecodeString(strings.ToUpper(rest))
	if err != nil {
		return nil, fmt.Errorf("unlock key: %w", err)
	}
	if len(k) != KeySize {
		return nil, errors.New("unlock key: wrong length")
	}
	return k, nil
}

// AADUnlockKey is the purpose of the unlock key sealed under the KEK in
// raft, from which every manager learns the key it wraps its KEK file with.
var AADUnlockKey = []byte("warren/unlock-key")
