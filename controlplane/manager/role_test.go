package manager

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/ca"
)

func TestChangeRole(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	authority, err := ca.NewCA(t0, rand.Reader, "cluster-1")
	if err != nil {
		t.Fatal(err)
	}
	sign := func(role ca.Role) func([]byte) ([]byte, error) {
		return func(csr []byte) ([]byte, error) {
			return authority.Sign(csr, ca.Identity{NodeID: "n1", Role: role}, 0, time.Now(), rand.Reader)
		}
	}
	worker := NodeIdentity{NodeID: "n1", Role: api.RoleWorker, Addr: "10.0.0.1", Managers: []string{"10.0.0.9:2377"}}
	manager := NodeIdentity{NodeID: "n1", Role: api.RoleManager, Addr: "10.0.0.1", APIAddr: "10.0.0.1:2377", Managers: []string{"10.0.0.1:2377", "10.0.0.9:2377"}}
	kek := []byte("0123456789abcdef0123456789abcdef")

	for _, tc := range []struct {
		name     string
		from     NodeIdentity
		grant    func(csr []byte) (Grant, error)
		want     *NodeIdentity // nil: the change fails and the data dir is untouched
		certRole ca.Role
		gone     []string // files of the old role that must be removed
		kept     []string
	}{
		{
			name: "promote",
			from: worker,
			grant: func(csr []byte) (Grant, error) {
				cert, err := sign(ca.RoleManager)(csr)
				return Grant{Role: api.RoleManager, CertPEM: cert, KEK: kek, APIAddr: "10.0.0.1:2377", PendingVote: 42, Managers: []string{"10.0.0.9:2377", "10.0.0.1:2377"}}, err
			},
			want:     &NodeIdentity{NodeID: "n1", Role: api.RoleManager, Addr: "10.0.0.1", APIAddr: "10.0.0.1:2377", PendingVote: 42, Managers: []string{"10.0.0.9:2377", "10.0.0.1:2377"}},
			certRole: ca.RoleManager,
			kept:     []string{ca.KEKFile},
		},
		{
			name: "demote",
			from: manager,
			grant: func(csr []byte) (Grant, error) {
				cert, err := sign(ca.RoleWorker)(csr)
				return Grant{Role: api.RoleWorker, CertPEM: cert, Managers: []string{"10.0.0.9:2377"}, KEK: kek, APIAddr: "ignored:1", PendingVote: 7}, err
			},
			want:     &NodeIdentity{NodeID: "n1", Role: api.RoleWorker, Addr: "10.0.0.1", Managers: []string{"10.0.0.9:2377"}},
			certRole: ca.RoleWorker,
			gone:     []string{RaftDir, ca.KEKFile, SocketName},
		},
		{
			name: "unknown role",
			from: manager,
			grant: func(csr []byte) (Grant, error) {
				cert, err := sign(ca.RoleWorker)(csr)
				return Grant{Role: "observer", CertPEM: cert}, err
			},
			kept: []string{RaftDir, ca.KEKFile, SocketName},
		},
		{
			name:  "refused",
			from:  manager,
			grant: func([]byte) (Grant, error) { return Grant{}, errors.New("not the leader") },
			kept:  []string{RaftDir, ca.KEKFile, SocketName},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := SaveIdentity(dir, &tc.from); err != nil {
				t.Fatal(err)
			}
			if tc.from.Role == api.RoleManager {
				for _, f := range []string{ca.KEKFile, SocketName, filepath.Join(RaftDir, "raft.db")} {
					_ = os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o700)
					if err := os.WriteFile(filepath.Join(dir, f), kek, 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			err := ChangeRole(dir, tc.from, rand.Reader, tc.grant)
			got, lerr := LoadIdentity(dir)
			if lerr != nil {
				t.Fatal(lerr)
			}
			if tc.want == nil {
				if err == nil {
					t.Fatal("ChangeRole succeeded, want an error")
				}
				if got.Role != tc.from.Role || got.APIAddr != tc.from.APIAddr {
					t.Errorf("a failed change rewrote the identity: %+v", got)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if got.NodeID != tc.want.NodeID || got.Role != tc.want.Role || got.Addr != tc.want.Addr || got.APIAddr != tc.want.APIAddr ||
					got.PendingVote != tc.want.PendingVote || !slices.Equal(got.Managers, tc.want.Managers) {
					t.Errorf("identity = %+v, want %+v", got, tc.want)
				}
				certs, err := ca.LoadCertStore(filepath.Join(dir, CertsDir))
				if err != nil {
					t.Fatal(err)
				}
				if id, err := certs.Identity(); err != nil || id.Role != tc.certRole {
					t.Errorf("saved certificate is for %+v (%v), want role %s", id, err, tc.certRole)
				}
			}
			for _, f := range tc.gone {
				if _, err := os.Stat(filepath.Join(dir, f)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s survived the change to %s (stat: %v)", f, got.Role, err)
				}
			}
			for _, f := range tc.kept {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("%s: %v", f, err)
				}
			}
		})
	}
}

func TestWantedRole(t *testing.T) {
	worker := NodeIdentity{Role: api.RoleWorker}
	for _, tc := range []struct {
		a    *api.Assignments
		want api.NodeRole
		ok   bool
	}{
		{nil, "", false},
		{&api.Assignments{}, "", false},
		{&api.Assignments{Role: api.RoleWorker}, "", false},
		{&api.Assignments{Role: api.RoleManager}, api.RoleManager, true},
	} {
		if got, ok := WantedRole(worker, tc.a); got != tc.want || ok != tc.ok {
			t.Errorf("WantedRole(worker, %+v) = %q, %v; want %q, %v", tc.a, got, ok, tc.want, tc.ok)
		}
	}
}

func TestPromotedAPIAddr(t *testing.T) {
	id := NodeIdentity{Addr: "10.0.0.5"}
	for listen, want := range map[string]string{":2377": "10.0.0.5:2377", "0.0.0.0:4000": "10.0.0.5:4000", "": "10.0.0.5:2377", "bad": "10.0.0.5:2377"} {
		if got := PromotedAPIAddr(id, listen); got != want {
			t.Errorf("PromotedAPIAddr(%q) = %q, want %q", listen, got, want)
		}
	}
}
