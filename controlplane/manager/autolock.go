package manager

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/apiserver"
	"github.com/warrenhq/warren/controlplane/ca"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/secretbox"
)

// LockedKEKFile holds the KEK sealed under the operator's unlock key while
// autolock is on; ca.kek (the KEK in clear) is then absent.
const LockedKEKFile = "ca.kek.locked"

// saveKEK writes the KEK in clear (unlockKey nil) or sealed under the
// unlock key, and removes the other form. The new file is in place before
// the old one goes, so a crash leaves a manager that can start.
func saveKEK(dir string, kek, unlockKey []byte) error {
	if unlockKey == nil {
		if err := ca.SaveKEK(dir, kek); err != nil {
			return err
		}
		return removeIfExists(filepath.Join(dir, LockedKEKFile))
	}
	sealed, err := secretbox.Seal(unlockKey, kek, secretbox.AADKEK, rand.Reader)
	if err != nil {
		return err
	}
	if err := writePrivate(filepath.Join(dir, LockedKEKFile), sealed); err != nil {
		return fmt.Errorf("save locked kek: %w", err)
	}
	return removeIfExists(filepath.Join(dir, ca.KEKFile))
}

func removeIfExists(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// openLockedKEK opens the sealed KEK with an unlock key.
func openLockedKEK(dir string, unlockKey []byte) ([]byte, error) {
	sealed, err := os.ReadFile(filepath.Join(dir, LockedKEKFile))
	if err != nil {
		return nil, err
	}
	kek, err := secretbox.Open(unlockKey, sealed, secretbox.AADKEK)
	if err != nil {
		return nil, errors.New("the unlock key does not open this manager's key-encryption key")
	}
	return kek, nil
}

// Locked reports whether dataDir holds a manager whose KEK is sealed by an
// unlock key.
func Locked(dataDir string) bool {
	if _, err := os.Stat(filepath.Join(dataDir, ca.KEKFile)); err == nil {
		return false
	}
	_, err := os.Stat(filepath.Join(dataDir, LockedKEKFile))
	return err == nil
}

// waitUnlock serves a locked manager until an administrator gives the
// unlock key: on the mTLS port and the unix socket, every call is answered
// with apiserver.LockedMessage except POST /v1/cluster/unlock. Raft is not
// started, so nothing of the cluster state is read or served before then.
func (m *Manager) waitUnlock(ctx context.Context) ([]byte, error) {
	if err := m.openAudit(); err != nil {
		return nil, err
	}
	ln, err := tls.Listen("tcp", m.cfg.ListenAddr, ca.ServerConfig(m.caCert, m.certs))
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", m.cfg.ListenAddr, err)
	}
	unixLn, err := apiserver.ListenUnix(filepath.Join(m.cfg.DataDir, SocketName))
	if err != nil {
		ln.Close()
		return nil, err
	}
	m.log.Warn("manager is locked (autolock): run `warren cluster unlock` on this machine")
	got := make(chan []byte, 1)
	handler := func(unix bool) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			m.lockedRequest(w, r, unix, got)
		})
	}
	tcp := &http.Server{Handler: handler(false), ReadHeaderTimeout: 10 * time.Second, ErrorLog: zapStdLog(m.log)}
	local := &http.Server{Handler: handler(true), ReadHeaderTimeout: 10 * time.Second, ErrorLog: zapStdLog(m.log)}
	go func() { _ = tcp.Serve(ln) }()
	go func() { _ = local.Serve(unixLn) }()
	var kek []byte
	select {
	case kek = <-got:
	case <-ctx.Done():
		err = ctx.Err()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = tcp.Shutdown(sctx)
	_ = local.Shutdown(sctx)
	if err != nil {
		return nil, fmt.Errorf("waiting for the unlock key: %w", err)
	}
	m.log.Info("manager unlocked")
	return kek, nil
}

func (m *Manager) lockedRequest(w http.ResponseWriter, r *http.Request, unix bool, got chan<- []byte) {
	answer := func(status int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(client.Error{Message: msg})
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/cluster/unlock" {
		answer(http.StatusServiceUnavailable, apiserver.LockedMessage)
		return
	}
	admin := unix
	actor := apiserver.Actor{Role: string(apiserver.RoleNone)}
	if unix {
		actor.Role = string(ca.RoleAdmin)
	}
	if r.TLS != nil {
		if id, ok := ca.IdentityFromConn(*r.TLS); ok {
			actor = apiserver.Actor{CN: id.NodeID, Role: string(id.Role)}
			admin = id.Role == ca.RoleAdmin
		}
	}
	// The unlock is audited by this manager: it has no raft, no leader.
	status := 0
	inner := answer
	answer = func(code int, msg string) { status = code; inner(code, msg) }
	defer func() {
		e := apiserver.AuditEntry{Time: time.Now().UTC(), RequestID: newRequestID(), Actor: actor, Source: r.RemoteAddr,
			Node: m.ident.NodeID, Verb: "POST /v1/cluster/unlock", Status: status}
		if unix {
			e.Source = "unix"
		}
		if err := m.audit.Write(e); err != nil {
			m.log.Error("audit log", zap.Error(err))
		}
	}()
	if !admin {
		answer(http.StatusForbidden, "unlocking a manager needs an admin certificate or its local socket")
		return
	}
	var req client.UnlockRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
		answer(http.StatusBadRequest, "request body: "+err.Error())
		return
	}
	key, err := secretbox.ParseUnlockKey(req.Key)
	if err != nil {
		answer(http.StatusBadRequest, err.Error())
		return
	}
	kek, err := openLockedKEK(m.cfg.DataDir, key)
	if err != nil {
		m.log.Warn("unlock refused", zap.String("remote", r.RemoteAddr), zap.Error(err))
		answer(http.StatusUnauthorized, err.Error())
		return
	}
	select {
	case got <- kek:
		answer(http.StatusOK, "")
	default:
		answer(http.StatusConflict, "this manager is being unlocked already")
	}
}

// watchAutolock keeps this manager's KEK file in the form the cluster asks
// for: sealed under the current unlock key while autolock is on, in clear
// when it is off. Every manager runs it, so turning autolock on, off or
// rotating the key reaches all of them through raft.
func (m *Manager) watchAutolock(ctx context.Context) {
	var idx uint64
	var done []byte // the sealed unlock key last applied; nil for "off"
	synced := false
	for {
		n, err := m.st.WaitIndex(ctx, idx)
		if err != nil {
			return
		}
		idx = n
		c := m.st.View().Cluster()
		if c == nil {
			continue
		}
		want := c.Keys.UnlockKey
		if !c.Autolock {
			want = nil
		}
		if synced && bytes.Equal(want, done) {
			continue
		}
		if err := m.syncKEKFile(c); err != nil {
			m.log.Error("autolock: update this manager's key file", zap.Error(err))
			continue
		}
		done, synced = want, true
	}
}

func (m *Manager) syncKEKFile(c *api.Cluster) error {
	if !c.Autolock || len(c.Keys.UnlockKey) == 0 {
		if !Locked(m.cfg.DataDir) {
			return nil
		}
		return saveKEK(m.cfg.DataDir, m.kek, nil)
	}
	key, err := secretbox.Open(m.kek, c.Keys.UnlockKey, secretbox.AADUnlockKey)
	if err != nil {
		return fmt.Errorf("open the unlock key: %w", err)
	}
	if Locked(m.cfg.DataDir) {
		if k, err := openLockedKEK(m.cfg.DataDir, key); err == nil && bytes.Equal(k, m.kek) {
			return nil
		}
	}
	return saveKEK(m.cfg.DataDir, m.kek, key)
}

// newUnlockKey makes an unlock key and its sealed form for raft.
func newUnlockKey(kek []byte) (key, sealed []byte, err error) {
	if key, err = secretbox.NewKey(rand.Reader); err != nil {
		return nil, nil, err
	}
	if sealed, err = secretbox.Seal(kek, key, secretbox.AADUnlockKey, rand.Reader); err != nil {
		return nil, nil, err
	}
	return key, sealed, nil
}

func newRequestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RaftKeyFile holds this manager's raft encryption key, sealed under the
// KEK: with autolock, the raft log and snapshots on this disk open only
// after an unlock.
const RaftKeyFile = "raft.key"

var aadRaftKey = []byte("warren/raft-key")

// raftKey loads this manager's raft key, making one the first time.
func (m *Manager) raftKey() ([]byte, error) {
	p := filepath.Join(m.cfg.DataDir, RaftKeyFile)
	sealed, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		key, err := secretbox.NewKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		if sealed, err = secretbox.Seal(m.kek, key, aadRaftKey, rand.Reader); err != nil {
			return nil, err
		}
		if err := writePrivate(p, sealed); err != nil {
			return nil, fmt.Errorf("save raft key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("raft key: %w", err)
	}
	key, err := secretbox.Open(m.kek, sealed, aadRaftKey)
	if err != nil {
		return nil, fmt.Errorf("raft key %s: %w", p, err)
	}
	return key, nil
}

// openAudit opens <data-dir>/audit.log once the data dir belongs to a
// manager (a refused join must leave no data dir behind).
func (m *Manager) openAudit() error {
	if m.audit != nil {
		return nil
	}
	a, err := apiserver.OpenAuditLog(filepath.Join(m.cfg.DataDir, AuditFile), 0, 0, m.cfg.AuditStdout)
	if err != nil {
		return err
	}
	m.audit = a
	return nil
}
