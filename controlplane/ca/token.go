package ca

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

const (
	tokenPrefix = "WRN"
	// TokenVersion is the only token format this package writes and reads.
	TokenVersion = 1
	// DefaultTokenTTL is how long a join token is accepted after it is made.
	DefaultTokenTTL = 24 * time.Hour

	secretBytes = 20 // 160 bits, 32 base32 characters
	// minSecretLen is the shortest secret ParseToken accepts (26 base32
	// characters = 130 bits), so hand-made weak secrets are refused.
	minSecretLen = 26
	maxSecretLen = 128
)

// Errors returned by ParseToken and CheckToken; test with errors.Is. Their
// messages never contain the secret.
var (
	ErrTokenMalformed = errors.New("join token: malformed, expected WRN-1-<ca digest>-<secret>")
	ErrTokenInvalid   = errors.New("join token: invalid secret (not a token of this cluster; check for a typo or ask for a new token)")
	ErrTokenRotated   = errors.New("join token: this token was rotated and is no longer accepted; ask the operator for the current one (warren join-token)")
	ErrTokenExpired   = errors.New("join token: expired")
	ErrTokenWrongRole = errors.New("join token: wrong role")
	ErrTokenDisabled  = errors.New("join token: joining with this role is disabled")
	ErrTokenWrongCA   = errors.New("join token: the CA digest does not match this cluster's CA (the token is for another cluster, or mistyped)")
)

// Token is a parsed join token.
type Token struct {
	Version  int
	CADigest string
	Secret   string
}

// String renders the token in the form operators paste. It contains the
// secret: never log it.
func (t Token) String() string {
	return fmt.Sprintf("%s-%d-%s-%s", tokenPrefix, t.Version, t.CADigest, t.Secret)
}

// NewToken makes a join token for the CA with the given digest and returns
// it together with the hash to store in raft (api.JoinTokens).
func NewToken(caDigest string, rnd io.Reader) (token string, hash string, err error) {
	if !isDigest(caDigest) {
		return "", "", fmt.Errorf("new token: CA digest must be %d base32 characters", DigestLen)
	}
	b := make([]byte, secretBytes)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return "", "", fmt.Errorf("new token: %w", err)
	}
	secret := digestEncoding.EncodeToString(b)
	t := Token{Version: TokenVersion, CADigest: strings.ToLower(caDigest), Secret: secret}
	return t.String(), HashSecret(secret), nil
}

// NewJoinTokens makes a worker and a manager token, both expiring
// DefaultTokenTTL after now, and the api.JoinTokens to store for them.
func NewJoinTokens(caDigest string, now time.Time, rnd io.Reader) (worker, manager string, stored api.JoinTokens, err error) {
	worker, wh, err := NewToken(caDigest, rnd)
	if err != nil {
		return "", "", api.JoinTokens{}, err
	}
	manager, mh, err := NewToken(caDigest, rnd)
	if err != nil {
		return "", "", api.JoinTokens{}, err
	}
	return worker, manager, api.JoinTokens{
		WorkerHash: wh, WorkerExpires: now.Add(DefaultTokenTTL),
		ManagerHash: mh, ManagerExpires: now.Add(DefaultTokenTTL),
	}, nil
}

// ParseToken parses WRN-1-<ca digest>-<secret>. Surrounding white space (a
// pasted newline) is ignored.
func ParseToken(s string) (Token, error) {
	parts := strings.Split(strings.TrimSpace(s), "-")
	if len(parts) != 4 {
		return Token{}, fmt.Errorf("%w (found %d '-'-separated parts, want 4)", ErrTokenMalformed, len(parts))
	}
	if !strings.EqualFold(parts[0], tokenPrefix) {
		return Token{}, fmt.Errorf("%w (does not start with %s-)", ErrTokenMalformed, tokenPrefix)
	}
	v, err := strconv.Atoi(parts[1])
	if err != nil {
		return Token{}, fmt.Errorf("%w (version %q is not a number)", ErrTokenMalformed, parts[1])
	}
	if v != TokenVersion {
		return Token{}, fmt.Errorf("join token: version %d is not supported by this warren (it reads version %d)", v, TokenVersion)
	}
	digest := strings.ToLower(parts[2])
	if !isDigest(digest) {
		return Token{}, fmt.Errorf("%w (ca digest must be %d base32 characters, found %d)", ErrTokenMalformed, DigestLen, len(parts[2]))
	}
	secret := strings.ToLower(parts[3])
	if len(secret) < minSecretLen || len(secret) > maxSecretLen || !isBase32(secret) {
		return Token{}, fmt.Errorf("%w (secret must be %d to %d base32 characters)", ErrTokenMalformed, minSecretLen, maxSecretLen)
	}
	return Token{Version: v, CADigest: digest, Secret: secret}, nil
}

func isDigest(s string) bool { return len(s) == DigestLen && isBase32(strings.ToLower(s)) }

func isBase32(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '2' && r <= '7') {
			return false
		}
	}
	return true
}

// HashSecret is the form in which a token secret is stored: hex SHA-256. A
// plain hash is enough because the secret has at least 130 random bits;
// there is nothing to brute-force that a slow hash would protect.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// CheckTokenCA refuses a token whose CA digest is not caDigest, the digest
// of the cluster CA the server holds. The joiner pins the CA by the digest
// before it sends the token; the server checks it again so that a token
// edited by hand, or a client that skips pinning, cannot join a cluster it
// never verified.
func CheckTokenCA(tok Token, caDigest string) error {
	if !strings.EqualFold(tok.CADigest, caDigest) {
		return ErrTokenWrongCA
	}
	return nil
}

// CheckToken decides whether tok may join as role. See CheckTokenHistory.
func CheckToken(tok Token, role api.NodeRole, tokens api.JoinTokens, now time.Time) error {
	return CheckTokenHistory(tok, role, tokens, nil, now)
}

// CheckTokenHistory is CheckToken that also recognises hashes of tokens that
// were rotated away (retired), so their holders get ErrTokenRotated instead
// of the less helpful ErrTokenInvalid.
//
// An expiry of zero is treated as expired: a token stored without an expiry
// is a bug, and failing closed makes it visible.
func CheckTokenHistory(tok Token, role api.NodeRole, tokens api.JoinTokens, retired []string, now time.Time) error {
	var hash, otherHash string
	var expires time.Time
	var other api.NodeRole
	switch role {
	case api.RoleWorker:
		hash, expires, otherHash, other = tokens.WorkerHash, tokens.WorkerExpires, tokens.ManagerHash, api.RoleManager
	case api.RoleManager:
		hash, expires, otherHash, other = tokens.ManagerHash, tokens.ManagerExpires, tokens.WorkerHash, api.RoleWorker
	default:
		return fmt.Errorf("join token: unknown role %q", role)
	}
	got := HashSecret(tok.Secret)
	// Compare against every candidate without early exit so the time taken
	// does not reveal which one matched.
	matchCurrent := hash != "" && equalHash(got, hash)
	matchOther := otherHash != "" && equalHash(got, otherHash)
	matchRetired := false
	for _, h := range retired {
		if equalHash(got, h) {
			matchRetired = true
		}
	}
	switch {
	case matchCurrent:
		if expires.IsZero() || !now.Before(expires) {
			return fmt.Errorf("%w at %s; ask the operator for a new one (warren join-token --rotate %s)", ErrTokenExpired, expires.UTC().Format(time.RFC3339), role)
		}
		return nil
	case matchOther:
		return fmt.Errorf("%w: this is a %s token, it cannot join as %s", ErrTokenWrongRole, other, role)
	case matchRetired:
		return ErrTokenRotated
	case hash == "":
		return fmt.Errorf("%w (%s)", ErrTokenDisabled, role)
	default:
		return ErrTokenInvalid
	}
}

func equalHash(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
