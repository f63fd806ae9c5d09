package ca

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

func TestNewTokenRoundTrip(t *testing.T) {
	c := newTestCA(t, 1, "a")
	tok, hash, err := NewToken(c.Digest(), rng(2))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, "WRN-1-"+c.Digest()+"-") {
		t.Fatalf("token %q does not start with WRN-1-<digest>-", tok)
	}
	p, err := ParseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != 1 || p.CADigest != c.Digest() || len(p.Secret) < 26 || p.String() != tok {
		t.Fatalf("parsed %+v", p)
	}
	if hash != HashSecret(p.Secret) || len(hash) != 64 {
		t.Fatalf("hash %q, want hex sha256 of the secret", hash)
	}
	tok2, _, _ := NewToken(c.Digest(), rng(3))
	if tok2 == tok {
		t.Fatal("two tokens are equal")
	}
	if _, _, err := NewToken("short", rng(4)); err == nil {
		t.Fatal("NewToken with a bad digest: want error")
	}
}

func TestParseToken(t *testing.T) {
	digest := newTestCA(t, 1, "a").Digest()
	secret := strings.Repeat("ab", 16)
	tests := []struct {
		name      string
		in        string
		malformed bool // errors.Is ErrTokenMalformed
		wantErr   string
	}{
		{name: "valid", in: "WRN-1-" + digest + "-" + secret},
		{name: "pasted with newline", in: "  WRN-1-" + digest + "-" + secret + "\n"},
		{name: "upper case", in: strings.ToUpper("WRN-1-" + digest + "-" + secret)},
		{name: "empty", in: "", malformed: true, wantErr: "expected WRN-1-<ca digest>-<secret>"},
		{name: "swarm token", in: "SWMTKN-1-" + digest + "-" + secret, malformed: true, wantErr: "does not start with WRN-"},
		{name: "missing secret", in: "WRN-1-" + digest, malformed: true, wantErr: "found 3"},
		{name: "extra dash", in: "WRN-1-" + digest + "-" + secret + "-x", malformed: true, wantErr: "found 5"},
		{name: "version not a number", in: "WRN-x-" + digest + "-" + secret, malformed: true, wantErr: "not a number"},
		{name: "future version", in: "WRN-2-" + digest + "-" + secret, wantErr: "version 2 is not supported"},
		{name: "short digest", in: "WRN-1-" + digest[:40] + "-" + secret, malformed: true, wantErr: "found 40"},
		{name: "short secret", in: "WRN-1-" + digest + "-" + secret[:25], malformed: true, wantErr: "secret must be"},
		{name: "bad secret char", in: "WRN-1-" + digest + "-" + secret[:30] + "0!", malformed: true, wantErr: "secret must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseToken(tt.in)
			if tt.wantErr == "" {
				if err != nil || got.Secret != secret || got.CADigest != digest {
					t.Fatalf("ParseToken = %+v, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
			}
			if errors.Is(err, ErrTokenMalformed) != tt.malformed {
				t.Fatalf("errors.Is(err, ErrTokenMalformed) = %v, want %v", !tt.malformed, tt.malformed)
			}
			if strings.Contains(strings.ToLower(err.Error()), secret[:25]) {
				t.Fatalf("error message leaks the secret: %v", err)
			}
		})
	}
}

func TestCheckToken(t *testing.T) {
	digest := newTestCA(t, 1, "a").Digest()
	workerTok, managerTok, stored, err := NewJoinTokens(digest, t0, rng(2))
	if err != nil {
		t.Fatal(err)
	}
	oldTok, oldHash, _ := NewToken(digest, rng(3))
	strangerTok, _, _ := NewToken(digest, rng(4))
	parse := func(s string) Token {
		p, err := ParseToken(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	noManagers := stored
	noManagers.ManagerHash = ""
	noExpiry := stored
	noExpiry.WorkerExpires = time.Time{}

	tests := []struct {
		name    string
		tok     string
		role    api.NodeRole
		tokens  api.JoinTokens
		now     time.Time
		wantErr error
	}{
		{"worker", workerTok, api.RoleWorker, stored, t0.Add(time.Hour), nil},
		{"manager", managerTok, api.RoleManager, stored, t0.Add(time.Hour), nil},
		{"last second", workerTok, api.RoleWorker, stored, t0.Add(DefaultTokenTTL - time.Second), nil},
		{"expired at 24h", workerTok, api.RoleWorker, stored, t0.Add(DefaultTokenTTL), ErrTokenExpired},
		{"no expiry stored", workerTok, api.RoleWorker, noExpiry, t0, ErrTokenExpired},
		{"wrong secret", strangerTok, api.RoleWorker, stored, t0, ErrTokenInvalid},
		{"rotated", oldTok, api.RoleWorker, stored, t0, ErrTokenRotated},
		{"worker token for manager", workerTok, api.RoleManager, stored, t0, ErrTokenWrongRole},
		{"manager token for worker", managerTok, api.RoleWorker, stored, t0, ErrTokenWrongRole},
		{"manager joins disabled", strangerTok, api.RoleManager, noManagers, t0, ErrTokenDisabled},
	}
	messages := map[string]error{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckTokenHistory(parse(tt.tok), tt.role, tt.tokens, []string{oldHash}, tt.now)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("CheckToken = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				messages[err.Error()] = tt.wantErr
			}
		})
	}
	// Wrong, rotated and expired must read differently to the operator.
	seen := map[error]bool{}
	for _, e := range messages {
		seen[e] = true
	}
	for _, e := range []error{ErrTokenInvalid, ErrTokenRotated, ErrTokenExpired} {
		if !seen[e] {
			t.Errorf("no case produced %v", e)
		}
	}
	// Without history a rotated token is just invalid.
	if err := CheckToken(parse(oldTok), api.RoleWorker, stored, t0); !errors.Is(err, ErrTokenInvalid) {
		t.Errorf("CheckToken(rotated, no history) = %v, want ErrTokenInvalid", err)
	}
	if err := CheckToken(parse(workerTok), "admin", stored, t0); err == nil {
		t.Error("CheckToken for role admin: want error")
	}
}

func TestCheckTokenCA(t *testing.T) {
	digest := newTestCA(t, 1, "a").Digest()
	other := newTestCA(t, 5, "b").Digest()
	tok, _, err := NewToken(digest, rng(2))
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckTokenCA(p, digest); err != nil {
		t.Fatalf("own digest: %v", err)
	}
	if err := CheckTokenCA(p, strings.ToUpper(digest)); err != nil {
		t.Fatalf("own digest in upper case: %v", err)
	}
	if err := CheckTokenCA(p, other); !errors.Is(err, ErrTokenWrongCA) {
		t.Fatalf("another CA's digest: %v, want ErrTokenWrongCA", err)
	}
}
