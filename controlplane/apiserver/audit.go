package apiserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warrenhq/warren/controlplane/client"
)

// The audit log: one JSON line per administrative write, written by the
// manager that served it — the leader, since writes are forwarded to it
// (a follower writes the line only when it could not forward). A line
// never holds a value: bodies are summarised by a hash, and for secrets
// and configs the value is left out of what is hashed, so a guessable
// secret cannot be confirmed from the log. Join and unlock bodies carry
// credentials and are not hashed at all.

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	Time      time.Time `json:"time"`
	RequestID string    `json:"request_id"`
	Actor     Actor     `json:"actor"`
	// Source is the caller's address; for a request a follower forwarded,
	// the address the follower saw ("unix" for its socket).
	Source string `json:"source"`
	// Via is the follower that forwarded the request, if any.
	Via    string `json:"via,omitempty"`
	Node   string `json:"node"` // the manager that wrote the line
	Verb   string `json:"verb"` // method and route pattern
	Object Object `json:"object"`
	Status int    `json:"status"`
	// SpecHash is sha256 of the request body (without any value).
	SpecHash string `json:"spec_hash,omitempty"`
}

// Actor is who made the call: a certificate's CN and role, or the local
// socket's peer uid.
type Actor struct {
	CN        string `json:"cn,omitempty"`
	Role      string `json:"role"`
	SocketUID *int   `json:"socket_uid,omitempty"`
}

// Object is what the call acted on, as far as the request and its answer
// name it.
type Object struct {
	Ref  string `json:"ref,omitempty"` // from the path
	Name string `json:"name,omitempty"`
	ID   string `json:"id,omitempty"` // from the answer
}

// AuditLog appends entries to a file, rotating it by size, and optionally
// copies them to another writer (stdout).
type AuditLog struct {
	mu       sync.Mutex
	path     string
	maxBytes int64
	keep     int
	f        *os.File
	size     int64
	copy     io.Writer
}

// OpenAuditLog opens path for appending (mode 0600). maxBytes (default
// 10 MiB) and keep (default 5) bound the rotated files path.1 … path.N.
func OpenAuditLog(path string, maxBytes int64, keep int, copyTo io.Writer) (*AuditLog, error) {
	if maxBytes <= 0 {
		maxBytes = 10 << 20
	}
	if keep <= 0 {
		keep = 5
	}
	l := &AuditLog{path: path, maxBytes: maxBytes, keep: keep, copy: copyTo}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *AuditLog) open() error {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit log %s: %w", l.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("audit log %s: %w", l.path, err)
	}
	l.f, l.size = f, st.Size()
	return nil
}

// Write appends one entry. A line is written whole or not at all.
func (l *AuditLog) Write(e AuditEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.size > 0 && l.size+int64(len(b)) > l.maxBytes {
		if err := l.rotate(); err != nil {
			return err
		}
	}
	n, err := l.f.Write(b)
	l.size += int64(n)
	if err != nil {
		return fmt.Errorf("audit log %s: %w", l.path, err)
	}
	if l.copy != nil {
		_, _ = l.copy.Write(b)
	}
	return nil
}

func (l *AuditLog) rotate() error {
	l.f.Close()
	for i := l.keep - 1; i >= 1; i-- {
		_ = os.Rename(l.path+"."+strconv.Itoa(i), l.path+"."+strconv.Itoa(i+1))
	}
	if err := os.Rename(l.path, l.path+".1"); err != nil {
		return fmt.Errorf("rotate audit log: %w", err)
	}
	return l.open()
}

// Close closes the file.
func (l *AuditLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// audited says which routes are administrative writes: writes an operator
// (or, for join, a newcomer with a token) makes. Node agents' own writes
// (heartbeats, status) are not: they would drown the log.
func audited(rt Route) bool {
	if rt.Pattern == "/v1/cluster/unlock" {
		return true
	}
	if rt.Forward != Write {
		return false
	}
	for _, r := range rt.Allowed {
		if r == RoleAdmin || r == RoleNone {
			return true
		}
	}
	return false
}

// auditState travels with a request through wrap and forward.
type auditState struct{ proxied bool }

type auditKey struct{}

// statusRecorder keeps the status and the start of the answer (for the
// object's ID).
type statusRecorder struct {
	http.ResponseWriter
	status int
	head   bytes.Buffer
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if room := 4096 - r.head.Len(); room > 0 {
		r.head.Write(b[:min(room, len(b))])
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// bodyHash reads the body (restoring it for the handler) and returns its
// hash with values removed, and the name it carries. Uploads (images) are
// not read: they are archives, not specs.
func bodyHash(r *http.Request, rt Route) (hash, name string) {
	if r.Body == nil || strings.HasPrefix(rt.Pattern, "/v1/images") {
		return "", ""
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(b))
	if err != nil || len(b) == 0 {
		return "", ""
	}
	var m map[string]any
	if json.Unmarshal(b, &m) == nil {
		if n, ok := m["name"].(string); ok {
			name = n
		}
	}
	switch {
	case rt.Pattern == "/v1/join" || rt.Pattern == "/v1/cluster/unlock" || strings.HasPrefix(rt.Pattern, "/v1/registry/logins"):
		return "", name // credentials: no hash at all
	case strings.HasPrefix(rt.Pattern, "/v1/secrets") || strings.HasPrefix(rt.Pattern, "/v1/configs"):
		if m == nil {
			return "", name
		}
		delete(m, "data")
		b, _ = json.Marshal(m)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), name
}

// auditStart prepares a request for auditing.
func (s *Server) auditStart(w http.ResponseWriter, r *http.Request, rt Route) (*statusRecorder, *http.Request, func(id Identity)) {
	if s.cfg.Audit == nil || !audited(rt) {
		return nil, r, nil
	}
	st := &auditState{}
	r = r.WithContext(context.WithValue(r.Context(), auditKey{}, st))
	rec := &statusRecorder{ResponseWriter: w}
	hash, name := bodyHash(r, rt)
	reqID := r.Header.Get(client.HeaderRequestID)
	if reqID == "" {
		if id, err := newRequestID(s.cfg.Rand); err == nil {
			reqID = id
		}
	}
	r.Header.Set(client.HeaderRequestID, reqID)
	w.Header().Set(client.HeaderRequestID, reqID)
	start := s.cfg.Now()
	return rec, r, func(id Identity) {
		if st.proxied {
			return // the leader wrote the line
		}
		e := AuditEntry{
			Time: start.UTC(), RequestID: reqID, Node: s.b.NodeID(), Verb: rt.Method + " " + rt.Pattern,
			Status: rec.status, SpecHash: hash, Source: r.RemoteAddr,
			Actor:  Actor{CN: id.NodeID, Role: string(id.Role)},
			Object: Object{Name: name},
		}
		for _, k := range []string{"ref", "role", "name"} {
			if v := r.PathValue(k); v != "" {
				e.Object.Ref = v
			}
		}
		if uid, ok := r.Context().Value(peerUIDKey{}).(int); ok {
			e.Actor.SocketUID, e.Source = &uid, "unix"
		}
		if from := r.Header.Get(client.HeaderForwardedSource); from != "" && r.Header.Get(client.HeaderForwardedFor) != "" && s.trustedForwarder(r) {
			e.Via, e.Source = e.Source, from
		}
		if e.Status >= 200 && e.Status < 300 {
			var wr client.WriteResult
			if json.Unmarshal(rec.head.Bytes(), &wr) == nil {
				e.Object.ID = wr.ID
			}
		}
		if err := s.cfg.Audit.Write(e); err != nil {
			s.log.Error("audit log write failed: " + err.Error())
		}
	}
}

// trustedForwarder reports whether the direct caller is a manager, whose
// forwarded-source header is believed (like the forwarded-for one).
func (s *Server) trustedForwarder(r *http.Request) bool {
	return s.authenticate(r).id.Role == RoleManager
}

func newRequestID(rnd io.Reader) (string, error) {
	b := make([]byte, 8)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// markProxied tells the audit middleware the leader answered (and logged).
func markProxied(r *http.Request) {
	if st, ok := r.Context().Value(auditKey{}).(*auditState); ok {
		st.proxied = true
	}
}

// forwardedSource is what a follower tells the leader about the caller's
// address.
func forwardedSource(r *http.Request) string {
	if uid, ok := r.Context().Value(peerUIDKey{}).(int); ok {
		return "unix:uid=" + strconv.Itoa(uid)
	}
	if _, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return r.RemoteAddr
	}
	return "unix"
}

type peerUIDKey struct{}

// UnixConnContext records the local socket peer's uid for the audit log;
// set it as the unix http.Server's ConnContext.
func UnixConnContext(ctx context.Context, c net.Conn) context.Context {
	if uid, ok := peerUID(c); ok {
		return context.WithValue(ctx, peerUIDKey{}, uid)
	}
	return ctx
}
