package secretbox

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"
)

// The hierarchy end to end: a value sealed under a DEK that is wrapped by
// a KEK that is wrapped by an unlock key opens only with the whole chain.
func TestKeyHierarchy(t *testing.T) {
	unlock, _ := NewKey(rand.Reader)
	kek, _ := NewKey(rand.Reader)
	dek, _ := NewKey(rand.Reader)
	wrappedKEK, err := Seal(unlock, kek, AADKEK, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	wrappedDEK, err := Seal(kek, dek, AADDataKey, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	value := []byte("db-password-4711")
	sealed, err := Seal(dek, value, ValueAAD("secret", "s1"), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{wrappedKEK, wrappedDEK, sealed} {
		if bytes.Contains(b, value) || bytes.Contains(b, kek) || bytes.Contains(b, dek) {
			t.Fatal("a wrapped key or sealed value holds a key or the value in clear")
		}
	}
	k, err := Open(unlock, wrappedKEK, AADKEK)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Open(k, wrappedDEK, AADDataKey)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(d, sealed, ValueAAD("secret", "s1"))
	if err != nil || !bytes.Equal(got, value) {
		t.Fatalf("open value = %q, %v", got, err)
	}
	// Keys are not interchangeable across levels or purposes.
	if _, err := Open(kek, sealed, ValueAAD("secret", "s1")); err == nil {
		t.Error("the KEK opened a value sealed under the DEK")
	}
	if _, err := Open(d, sealed, ValueAAD("config", "s1")); err == nil {
		t.Error("a secret's sealed value opened as a config")
	}
	if _, err := Open(d, sealed, ValueAAD("secret", "s2")); err == nil {
		t.Error("a sealed value opened under another object's ID")
	}
	other, _ := NewKey(rand.Reader)
	if _, err := Open(other, wrappedKEK, AADKEK); err == nil {
		t.Error("a wrong unlock key opened the KEK")
	}
}

func TestNodeCacheKey(t *testing.T) {
	dek := bytes.Repeat([]byte{1}, 32)
	a, b := NodeCacheKey(dek, "node-a"), NodeCacheKey(dek, "node-b")
	if len(a) != KeySize || bytes.Equal(a, b) {
		t.Fatalf("cache keys: len %d, equal for two nodes: %v", len(a), bytes.Equal(a, b))
	}
	if !bytes.Equal(a, NodeCacheKey(dek, "node-a")) {
		t.Error("cache key is not deterministic: managers could not agree on it")
	}
	if bytes.Equal(a, NodeCacheKey(bytes.Repeat([]byte{2}, 32), "node-a")) {
		t.Error("cache key does not depend on the DEK")
	}
	if bytes.Equal(a, dek) {
		t.Error("cache key is the DEK")
	}
}

func TestUnlockKeyFormat(t *testing.T) {
	k, _ := NewKey(rand.Reader)
	s := FormatUnlockKey(k)
	if !strings.HasPrefix(s, "WRNKEY-1-") {
		t.Fatalf("unlock key %q lacks its prefix", s)
	}
	got, err := ParseUnlockKey("  " + s + "\n")
	if err != nil || !bytes.Equal(got, k) {
		t.Fatalf("parse %q = %x, %v", s, got, err)
	}
	for _, bad := range []string{"", "SWMKEY-1-" + s[9:], s[:20], UnlockKeyPrefix + "!!!!"} {
		if _, err := ParseUnlockKey(bad); err == nil {
			t.Errorf("ParseUnlockKey(%q) accepted", bad)
		}
	}
}
