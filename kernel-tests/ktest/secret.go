package ktest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

// RandomMarker is a value no file could hold by chance: a secret whose
// value is one can be searched for on disk.
func RandomMarker(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "wrn-marker-" + hex.EncodeToString(b)
}

// ValueFile writes v to a file outside every data dir, for the CLI to
// read a secret's value from.
func ValueFile(t testing.TB, v string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "value")
	if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
