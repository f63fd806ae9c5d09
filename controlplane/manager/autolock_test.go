package manager

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/apiserver"
	"github.com/warrenhq/warren/controlplane/ca"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/secretbox"
	"github.com/warrenhq/warren/controlplane/testutil"
)

// dirHolds reports whether any file under dir holds b raw, in base64 or hex.
func dirHolds(t *testing.T, dir string, b []byte) []string {
	t.Helper()
	var out []string
	forms := [][]byte{b, []byte(base64.StdEncoding.EncodeToString(b)), []byte(hex.EncodeToString(b))}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, f := range forms {
			if bytes.Contains(data, f) {
				out = append(out, p)
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAutolock: init with autolock, restart locked, refuse everything but
// the unlock, open with the key; the data dir alone holds neither the KEK
// nor a secret. Then off, on again and a rotation reach the key file.
func TestAutolock(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a manager three times")
	}
	cfg := Config{DataDir: filepath.Join(t.TempDir(), "m1"), Logger: zaptest.NewLogger(t), Hostname: "m1"}
	cfg.AdvertiseAddr = freeAddr(t)
	cfg.ListenAddr = cfg.AdvertiseAddr
	cfg.Init = &InitOptions{Autolock: true}
	tm := start(t, cfg)
	key := tm.m.InitResult().UnlockKey
	if !strings.HasPrefix(key, secretbox.UnlockKeyPrefix) {
		t.Fatalf("init printed unlock key %q", key)
	}
	if !Locked(cfg.DataDir) {
		t.Fatal("autolock at init left the KEK in clear")
	}
	ctx := context.Background()
	marker := []byte("autolock-marker-2b6d91f0")
	if _, err := tm.client(t).CreateSecret(ctx, api.KindSecret, client.SecretCreateRequest{Name: "db", Labels: map[string]string{"note": "raft-state-marker-5e3a"}, Data: marker}); err != nil {
		t.Fatal(err)
	}
	kek := append([]byte(nil), tm.m.kek...)
	tm.stop()

	// The files alone: no KEK in clear, no secret, and the sealed KEK does
	// not open without the unlock key.
	if _, err := ca.LoadKEK(cfg.DataDir); err == nil {
		t.Fatal("a locked manager's data dir holds a readable KEK")
	}
	for _, b := range [][]byte{kek, marker} {
		if got := dirHolds(t, cfg.DataDir, b); len(got) > 0 {
			t.Fatalf("%s found in %v", b, got)
		}
	}
	// The raft log is sealed under a key that is itself under the KEK: the
	// state (here a label) is not readable from the files either.
	if got := dirHolds(t, filepath.Join(cfg.DataDir, RaftDir), []byte("raft-state-marker-5e3a")); len(got) > 0 {
		t.Fatalf("raft state in clear in %v", got)
	}
	other, _ := secretbox.NewKey(bytes.NewReader(bytes.Repeat([]byte{9}, 32)))
	if _, err := openLockedKEK(cfg.DataDir, other); err == nil {
		t.Fatal("another key opened the sealed KEK")
	}

	// Restart: locked until unlocked.
	cfg.Init = nil
	opened := make(chan *Manager, 1)
	go func() {
		m, err := Open(ctx, cfg)
		if err != nil {
			t.Error(err)
		}
		opened <- m
	}()
	local, err := client.New(client.Config{Socket: filepath.Join(cfg.DataDir, SocketName), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the locked manager answers with the locked message", 20*time.Second, func() error {
		_, err := local.Secrets(ctx, api.KindSecret)
		if err == nil || !strings.Contains(err.Error(), apiserver.LockedMessage) {
			return errorOr(err, "secret ls answered while locked")
		}
		return nil
	})
	if _, err := local.Services(ctx); err == nil || client.StatusOf(err) != http.StatusServiceUnavailable {
		t.Fatalf("service ls while locked: %v", err)
	}
	if err := local.Unlock(ctx, secretbox.FormatUnlockKey(other)); err == nil || client.StatusOf(err) != http.StatusUnauthorized {
		t.Fatalf("unlock with a wrong key: %v", err)
	}
	if err := local.Unlock(ctx, "not-a-key"); err == nil || !strings.Contains(err.Error(), "WRNKEY-1-") {
		t.Fatalf("unlock with garbage: %v", err)
	}
	if err := local.Unlock(ctx, key); err != nil {
		t.Fatal(err)
	}
	m := <-opened
	if m == nil {
		t.FailNow()
	}
	// Both unlock attempts are in this manager's audit log, refused and
	// accepted, and neither holds the key.
	audit, err := os.ReadFile(filepath.Join(cfg.DataDir, AuditFile))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(audit), `"verb":"POST /v1/cluster/unlock"`); n != 3 ||
		!strings.Contains(string(audit), `"status":401`) || !strings.Contains(string(audit), `"status":200`) {
		t.Fatalf("audit log after three unlock attempts:\n%s", audit)
	}
	if strings.Contains(string(audit), strings.TrimPrefix(key, secretbox.UnlockKeyPrefix)) {
		t.Fatal("the audit log holds the unlock key")
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Serve(sctx) }()
	tm = &testManager{m: m, cancel: cancel, done: done, cfg: cfg}
	defer tm.stop()
	c := tm.client(t)
	testutil.Eventually(t, "the unlocked manager serves the secret", 20*time.Second, func() error {
		_, err := c.Secret(ctx, api.KindSecret, "db")
		return err
	})
	if err := c.Unlock(ctx, key); err == nil || !strings.Contains(err.Error(), "not locked") {
		t.Fatalf("unlock of an unlocked manager: %v", err)
	}
	if got, err := c.UnlockKey(ctx); err != nil || got.UnlockKey != key {
		t.Fatalf("unlock-key = %+v, %v", got, err)
	}

	// Off: the KEK is written in clear again.
	off, on := false, true
	if _, err := c.UpdateCluster(ctx, client.ClusterUpdate{Autolock: &off}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "autolock off writes ca.kek", 10*time.Second, func() error {
		if Locked(cfg.DataDir) {
			return errorOr(nil, "still locked")
		}
		return nil
	})
	if _, err := c.UnlockKey(ctx); err == nil || !strings.Contains(err.Error(), "autolock is off") {
		t.Fatalf("unlock-key with autolock off: %v", err)
	}
	// On again: a new key, shown once.
	res, err := c.UpdateCluster(ctx, client.ClusterUpdate{Autolock: &on})
	if err != nil || res.UnlockKey == "" || res.UnlockKey == key {
		t.Fatalf("autolock on: %+v, %v (want a new key)", res, err)
	}
	waitSealedBy(t, cfg.DataDir, res.UnlockKey)
	// Rotate: the file follows the new key.
	rot, err := c.RotateUnlockKey(ctx)
	if err != nil || rot.UnlockKey == res.UnlockKey {
		t.Fatalf("rotate: %+v, %v", rot, err)
	}
	waitSealedBy(t, cfg.DataDir, rot.UnlockKey)
}

func waitSealedBy(t *testing.T, dir, key string) {
	t.Helper()
	k, err := secretbox.ParseUnlockKey(key)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the KEK file is sealed by "+key[:14]+"…", 10*time.Second, func() error {
		if !Locked(dir) {
			return errorOr(nil, "ca.kek still in clear")
		}
		_, err := openLockedKEK(dir, k)
		return err
	})
}

type testErr string

func (e testErr) Error() string { return string(e) }

func errorOr(err error, msg string) error {
	if err != nil {
		return testErr(msg + ": " + err.Error())
	}
	return testErr(msg)
}

// A manager joining a cluster with autolock on writes its KEK sealed from
// the first moment, under the cluster's unlock key.
func TestAutolockJoin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two managers")
	}
	base := t.TempDir()
	log := zaptest.NewLogger(t)
	c1 := Config{DataDir: filepath.Join(base, "m1"), Logger: log.Named("m1"), Hostname: "m1", Init: &InitOptions{Autolock: true}}
	c1.AdvertiseAddr = freeAddr(t)
	c1.ListenAddr = c1.AdvertiseAddr
	m1 := start(t, c1)
	defer m1.stop()
	res := m1.m.InitResult()
	c2 := Config{DataDir: filepath.Join(base, "m2"), Logger: log.Named("m2"), Hostname: "m2",
		Join: &JoinOptions{Addr: c1.AdvertiseAddr, Token: res.ManagerToken}}
	c2.AdvertiseAddr = freeAddr(t)
	c2.ListenAddr = c2.AdvertiseAddr
	m2 := start(t, c2)
	defer m2.stop()
	if !Locked(c2.DataDir) {
		t.Fatal("the joined manager wrote its KEK in clear under autolock")
	}
	k, err := secretbox.ParseUnlockKey(res.UnlockKey)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := openLockedKEK(c2.DataDir, k); err != nil || !bytes.Equal(got, m1.m.kek) {
		t.Fatalf("the joiner's sealed KEK does not open with the cluster's unlock key: %v", err)
	}
}
