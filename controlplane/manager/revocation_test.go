package manager

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/ca"
	"github.com/warrenhq/warren/controlplane/store"
)

func TestRaftPeerRemoved(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	authority, err := ca.NewCA(now, rand.Reader, "c")
	if err != nil {
		t.Fatal(err)
	}
	conn := func(nodeID string) tls.ConnectionState {
		certPEM, _, err := authority.Issue(ca.Identity{NodeID: nodeID, Role: ca.RoleManager}, 0, now, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := pem.Decode(certPEM)
		leaf, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf}}}
	}
	st := store.New()
	b, err := store.Encode(&store.Batch{Now: now, RemoveNodes: []string{"gone"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Apply(1, b); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cs   tls.ConnectionState
		want bool
	}{
		{"the removed node's manager certificate", conn("gone"), true},
		{"another manager", conn("here"), false},
		{"a joining manager no store knows yet", conn("new"), false},
		{"no verified chain", tls.ConnectionState{}, false},
	} {
		if id, got := raftPeerRemoved(tc.cs, st.View()); got != tc.want {
			t.Errorf("%s: removed = %v (%q), want %v", tc.name, got, id, tc.want)
		}
	}
}
