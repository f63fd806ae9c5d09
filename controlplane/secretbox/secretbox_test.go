package secretbox

import (
	"bytes"
	"crypto/rand"
	"testing"
)

func TestSealOpen(t *testing.T) {
	kek := bytes.Repeat([]byte{7}, 32)
	other := bytes.Repeat([]byte{8}, 32)
	s, err := Seal(kek, []byte("WRN-1-abc-secret"), []byte("join-token/worker"), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(s, []byte("secret")) {
		t.Fatal("sealed value contains the plaintext")
	}
	got, err := Open(kek, s, []byte("join-token/worker"))
	if err != nil || string(got) != "WRN-1-abc-secret" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := Open(other, s, []byte("join-token/worker")); err == nil {
		t.Error("opened with the wrong key")
	}
	if _, err := Open(kek, s, []byte("join-token/manager")); err == nil {
		t.Error("opened with the wrong purpose")
	}
	if _, err := Seal(kek[:16], nil, nil, rand.Reader); err == nil {
		t.Error("accepted a 16-byte key")
	}
}
