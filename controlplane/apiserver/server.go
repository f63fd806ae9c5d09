package apiserver

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/ca"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/raftnode"
	"github.com/warrenhq/warren/controlplane/store"
)

// NoQuorumMessage is what a refused write says when raft has no quorum.
var NoQuorumMessage = raftnode.ErrNoQuorum.Error()

// Config wires a Server. Backend and CAPool come from the manager; Now and
// Rand default to the real clock and crypto/rand.
type Config struct {
	Backend Backend
	Logger  *zap.Logger
	// CAPool verifies client certificates when the listener only requested
	// them (tls.RequestClientCert): a caller with a certificate from another
	// cluster then gets a JSON 401 instead of a TLS alert. Chains already
	// verified in the handshake (ca.ServerConfig) are used as they are.
	CAPool func() *x509.CertPool
	// NoQuorum is the error Backend.Apply wraps when raft lacks quorum;
	// default raftnode.ErrNoQuorum.
	NoQuorum error
	Now      func() time.Time
	Rand     io.Reader
	// MaxWait caps a blocking query's wait (default 5m).
	MaxWait time.Duration
	// CatchUpWait bounds how long a request served from the local store
	// waits for the store to catch up with the raft log (Raft.WaitCaughtUp)
	// before it is refused with 503 (default 5s).
	CatchUpWait time.Duration
	// RaftAddrIsAPIAddr says that managers serve raft and the API on one
	// address: the leader's raft address then reaches its API even before
	// this manager's store holds the leader's node record.
	RaftAddrIsAPIAddr bool
	// Audit, when set, receives one entry per administrative write (audit.go).
	Audit *AuditLog
	// AssignmentsCoalesce is how long an agent's blocking query, once woken
	// by a change, waits for the rest of the burst before answering
	// (default 100ms; negative: answer at once).
	AssignmentsCoalesce time.Duration
	// Images pins service images to digests at create and update; nil
	// leaves them as given (handlers_registry.go).
	Images ImageResolver
}

// Server serves the v1 API. Create it with New.
type Server struct {
	cfg Config
	// holdersMu serialises image holder changes on the leader.
	holdersMu sync.Mutex
	b         Backend
	log       *zap.Logger
	routes    []Route
	mux       *http.ServeMux

	// One transport to the other managers (forwarding, blob relay) and one
	// to the nodes (logs), built on first use and kept for connection reuse.
	proxyOnce sync.Once
	proxyTr   http.RoundTripper
	nodeOnce  sync.Once
	nodeTr    http.RoundTripper

	// joinMu serialises joins so two joiners cannot race for raft changes.
	joinMu sync.Mutex

	dek dekCache

	shared  sharedCache   // the node-independent part of the assignments
	reports reportBatcher // status reports of many nodes, one raft entry
	lease   readGate      // the leader's read lease (readlease.go)
	creates createBatcher // service creates, one raft entry per round
}

// New checks cfg and builds the route table.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Backend == nil:
		return nil, errors.New("apiserver: Backend is required")
	case cfg.CAPool == nil:
		return nil, errors.New("apiserver: CAPool is required to authenticate callers")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.NoQuorum == nil {
		cfg.NoQuorum = raftnode.ErrNoQuorum
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 5 * time.Minute
	}
	if cfg.CatchUpWait <= 0 {
		cfg.CatchUpWait = 5 * time.Second
	}
	if cfg.AssignmentsCoalesce == 0 {
		cfg.AssignmentsCoalesce = 100 * time.Millisecond
	}
	s := &Server{cfg: cfg, b: cfg.Backend, log: cfg.Logger.Named("api")}
	s.routes = s.routeTable()
	s.mux = s.buildMux(s.routes)
	return s, nil
}

// Routes returns the route table (docs and tests).
func (s *Server) Routes() []Route { return slices.Clone(s.routes) }

// Handler serves callers on the mTLS listener: identity comes from their
// certificate.
func (s *Server) Handler() http.Handler { return s.mux }

// UnixHandler serves the root-only unix socket: callers are admin.
func (s *Server) UnixHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = r.WithContext(context.WithValue(r.Context(), unixKey{}, true))
		s.mux.ServeHTTP(w, r)
	})
}

// ListenUnix creates the unix socket at path, readable and writable by root
// only. A stale socket from a previous run is replaced.
func ListenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("api socket %s: remove stale socket: %w", path, err)
	}
	// The umask closes the window between bind and chmod in which another
	// user could connect and be treated as admin.
	l, err := listenUnixPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	return l, nil
}

// Forwarding says where a route is served.
type Forwarding int

const (
	// Local routes are served by whichever manager is called.
	Local Forwarding = iota
	// Read routes are linearizable: served by the leader after it confirms
	// its leadership, unless the caller asks for ?stale=true.
	Read
	// Write routes go to the leader.
	Write
)

// Route is one entry of the API.
type Route struct {
	Method  string
	Pattern string
	// Allowed lists the roles that may call the route; RoleNone admits
	// callers without any certificate (only the join route).
	Allowed []Role
	Forward Forwarding
	Handler func(w http.ResponseWriter, r *http.Request, id Identity) error
}

type unixKey struct{}

// httpError is an error with a status and a message for the caller.
type httpError struct {
	status int
	msg    string
	leader string
	// cause is what the error was made from, for errors.Is.
	cause error
}

func (e *httpError) Error() string { return e.msg }
func (e *httpError) Unwrap() error { return e.cause }

func errorf(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	if !errors.As(err, &he) {
		he = &httpError{status: http.StatusInternalServerError, msg: err.Error()}
		s.log.Error("request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
	}
	writeJSON(w, he.status, client.Error{Message: he.msg, Leader: he.leader})
}

func (s *Server) buildMux(routes []Route) *http.ServeMux {
	mux := http.NewServeMux()
	for _, rt := range routes {
		mux.Handle(rt.Method+" "+rt.Pattern, timed(rt, s.wrap(rt)))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, client.Error{Message: fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)})
	})
	return mux
}

// caller is who is on the other end of the connection, before forwarding.
type caller struct {
	id Identity
	// problem explains why a certificate gave no identity.
	problem string
}

// authenticate derives the identity from the transport.
func (s *Server) authenticate(r *http.Request) caller {
	if v, _ := r.Context().Value(unixKey{}).(bool); v {
		return caller{id: Identity{Role: RoleAdmin}}
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return caller{id: Identity{Role: RoleNone}, problem: "no client certificate was presented"}
	}
	if len(r.TLS.VerifiedChains) > 0 {
		// The listener verified the chain during the handshake (ca.ServerConfig).
		if id, ok := ca.IdentityFromConn(*r.TLS); ok {
			return caller{id: id}
		}
		return caller{id: Identity{Role: RoleNone}, problem: "the client certificate carries no warren node identity"}
	}
	// A listener that only requests certificates leaves verification to us,
	// so a certificate from another cluster gets a JSON answer.
	leaf := r.TLS.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range r.TLS.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         s.cfg.CAPool(),
		Intermediates: inter,
		CurrentTime:   s.cfg.Now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return caller{id: Identity{Role: RoleNone}, problem: "the client certificate is not valid for this cluster (" + err.Error() + ")"}
	}
	st := *r.TLS
	st.VerifiedChains = chains
	id, ok := ca.IdentityFromConn(st)
	if !ok {
		return caller{id: Identity{Role: RoleNone}, problem: "the client certificate carries no warren node identity"}
	}
	return caller{id: id}
}

// effective applies the forwarded-for header, which only a manager may set:
// a follower forwarding a request vouches for the original caller.
func effective(c caller, r *http.Request) (Identity, bool, error) {
	h := r.Header.Get(client.HeaderForwardedFor)
	if h == "" {
		return c.id, false, nil
	}
	if c.id.Role != RoleManager {
		// Ignored rather than refused: a proxy in front of a CLI may have
		// added it, and it grants nothing.
		return c.id, false, nil
	}
	id, err := parseForwarded(h)
	if err != nil {
		return Identity{}, false, errorf(http.StatusBadRequest, "header %s: %v", client.HeaderForwardedFor, err)
	}
	return id, true, nil
}

func formatForwarded(id Identity) string { return string(id.Role) + ";" + id.NodeID }

func parseForwarded(h string) (Identity, error) {
	role, node, ok := strings.Cut(h, ";")
	if !ok {
		return Identity{}, fmt.Errorf("want role;node-id, got %q", h)
	}
	switch Role(role) {
	case RoleNone, RoleWorker, RoleManager, RoleAdmin:
	default:
		return Identity{}, fmt.Errorf("unknown role %q", role)
	}
	return Identity{Role: Role(role), NodeID: node}, nil
}

func allowed(rt Route, role Role) bool {
	return slices.Contains(rt.Allowed, RoleNone) || slices.Contains(rt.Allowed, role)
}

func rolesText(rs []Role) string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return strings.Join(out, " or ")
}

// wrap authorises, then forwards or serves.
func (s *Server) wrap(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec, r, audit := s.auditStart(w, r, rt)
		if audit != nil {
			w = rec
		}
		c := s.authenticate(r)
		c.id = s.roleNow(c.id, rt)
		id, forwarded, err := effective(c, r)
		if forwarded {
			id = s.roleNow(id, rt) // the forwarding manager's store may lag
		}
		if audit != nil {
			defer func() {
				if id.Role == "" {
					id = c.id // the forwarded-for header was refused
				}
				audit(id)
			}()
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := s.revoked(c.id, id); err != nil {
			if !allowed(rt, RoleNone) {
				s.writeError(w, r, err)
				return
			}
			// An open route (join, the CA) serves a removed node as anyone.
			c, id = caller{id: Identity{Role: RoleNone}}, Identity{Role: RoleNone}
		}
		if !allowed(rt, id.Role) {
			if id.Role == RoleNone {
				s.writeError(w, r, errorf(http.StatusUnauthorized, "%s %s needs a client certificate with role %s: %s",
					rt.Method, rt.Pattern, rolesText(rt.Allowed), c.problem))
				return
			}
			s.writeError(w, r, errorf(http.StatusForbidden, "%s %s needs role %s; the caller's certificate has role %s",
				rt.Method, rt.Pattern, rolesText(rt.Allowed), id.Role))
			return
		}
		if err := s.route(w, r, rt, id, forwarded); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// route decides where the request is served. Whatever is answered from
// the local store waits until that store has caught up with the raft log:
// a restarted manager's store starts from its last snapshot, and answering
// from it would deny that existing objects exist.
func (s *Server) route(w http.ResponseWriter, r *http.Request, rt Route, id Identity, forwarded bool) error {
	switch rt.Forward {
	case Write:
		if !s.b.IsLeader() {
			if forwarded {
				// The sender thought we lead; leadership moved. Forwarding again
				// could loop, so let the caller retry.
				return errorf(http.StatusServiceUnavailable, "leadership changed while the request was forwarded; retry")
			}
			return s.forward(w, r, rt, id, true)
		}
		return rt.Handler(w, r, id)
	case Read:
		switch {
		case r.URL.Query().Get("stale") == "true":
			w.Header().Set(client.HeaderConsistency, "stale")
		case s.b.IsLeader():
			err := s.verifyRead(r.Context())
			if err == nil {
				// A leadership check that passed a barrier this term, and
				// whose lease still holds: the store holds everything
				// committed (readlease.go).
				return rt.Handler(w, r, id)
			}
			// Without quorum reads still work, from the local view, and say
			// so.
			s.log.Debug("leadership not confirmed; serving a stale read", zap.Error(err))
			w.Header().Set(client.HeaderConsistency, "stale")
		case forwarded:
			w.Header().Set(client.HeaderConsistency, "stale")
		default:
			return s.forward(w, r, rt, id, false)
		}
	}
	return s.serveLocal(w, r, rt, id)
}

// caughtUp waits, bounded, until the local store may be answered from.
func (s *Server) caughtUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CatchUpWait)
	defer cancel()
	if err := s.b.WaitCaughtUp(ctx); err != nil {
		return &httpError{status: http.StatusServiceUnavailable, cause: err,
			msg: fmt.Sprintf("%v; retry, or ask another manager", err)}
	}
	return nil
}

// leaderAPIAddr finds the leader's API address, waiting a little for a
// leader to be known (Raft.AwaitLeader).
func (s *Server) leaderAPIAddr(ctx context.Context) (string, string, error) {
	lid, raftAddr, err := s.b.AwaitLeader(ctx)
	if err != nil {
		return "", "", noLeaderError(err)
	}
	if n, ok := s.b.View().Node(lid); ok && n.Status.Manager != nil && n.Status.Manager.APIAddr != "" {
		return lid, n.Status.Manager.APIAddr, nil
	}
	if s.cfg.RaftAddrIsAPIAddr && raftAddr != "" {
		return lid, raftAddr, nil
	}
	return lid, "", errorf(http.StatusServiceUnavailable, "the leader %s has no known API address yet; retry", lid)
}

// noLeaderError is the answer to a write no leader took. A manager that
// cannot write its own raft log says so, with the disk's error: that is
// what the operator must fix, and "no quorum" alone would send them to the
// other managers.
func noLeaderError(err error) error {
	if errors.Is(err, raftnode.ErrStorage) {
		return &httpError{status: http.StatusServiceUnavailable, cause: err, msg: err.Error()}
	}
	return &httpError{status: http.StatusServiceUnavailable, cause: err, msg: NoQuorumMessage}
}

// forward proxies the request to the leader with this manager's certificate,
// naming the original caller in a header the leader trusts from managers.
// Reads that cannot reach a leader fall back to the local view.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, rt Route, id Identity, write bool) error {
	lid, addr, err := s.leaderAPIAddr(r.Context())
	if err != nil {
		if write {
			return err
		}
		w.Header().Set(client.HeaderConsistency, "stale")
		return s.serveLocal(w, r, rt, id)
	}
	var proxyErr error
	p := &httputil.ReverseProxy{
		Transport: s.managerTransport(),
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "https"
			pr.Out.URL.Host = addr
			pr.Out.Host = addr
			pr.Out.Header.Set(client.HeaderForwardedFor, formatForwarded(id))
			pr.Out.Header.Set(client.HeaderForwardedSource, forwardedSource(pr.In))
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			proxyErr = err
		},
	}
	p.ServeHTTP(w, r)
	if proxyErr == nil {
		markProxied(r)
	}
	if proxyErr != nil {
		s.log.Warn("forward to leader failed", zap.String("leader", lid), zap.String("addr", addr), zap.Error(proxyErr))
		if !write {
			w.Header().Set(client.HeaderConsistency, "stale")
			return s.serveLocal(w, r, rt, id)
		}
		return &httpError{status: http.StatusServiceUnavailable, leader: addr,
			msg: fmt.Sprintf("cannot reach the leader %s at %s (%v); if the managers lost quorum, %s", lid, addr, proxyErr, NoQuorumMessage)}
	}
	return nil
}

// serveLocal runs the route's handler here, from the local store, once
// that store has caught up.
func (s *Server) serveLocal(w http.ResponseWriter, r *http.Request, rt Route, id Identity) error {
	if err := s.caughtUp(r.Context()); err != nil {
		return err
	}
	return rt.Handler(w, r, id)
}

// apply proposes a batch and maps raft failures to the caller's language.
func (s *Server) apply(ctx context.Context, b *store.Batch) (uint64, error) {
	b.Now = s.cfg.Now()
	idx, err := s.b.Apply(ctx, b)
	switch {
	case err == nil:
		return idx, nil
	case errors.Is(err, raftnode.ErrStorage):
		return 0, noLeaderError(err)
	case errors.Is(err, s.cfg.NoQuorum):
		return 0, errorf(http.StatusServiceUnavailable, "%s", NoQuorumMessage)
	case errors.Is(err, store.ErrConflict):
		return 0, &httpError{status: http.StatusConflict, cause: err,
			msg: fmt.Sprintf("the object changed while the request was applied; retry: %v", err)}
	case errors.Is(err, raftnode.ErrNotLeader) || !s.b.IsLeader():
		return 0, errorf(http.StatusServiceUnavailable, "this manager lost leadership while applying the request; retry")
	}
	return 0, fmt.Errorf("apply: %w", err)
}

// decodeBody reads a JSON request body, naming the field a type error is in.
// It is the one decoder of every JSON route: the body must be exactly one
// value with known fields, because a second value or trailing bytes mean
// the caller sent something other than what the server acts on.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return errorf(http.StatusBadRequest, "request body: %s: cannot be %s (want %s)", te.Field, te.Value, te.Type)
		}
		return errorf(http.StatusBadRequest, "request body: %v", err)
	}
	var extra json.RawMessage
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
		return nil
	case err == nil:
		return errorf(http.StatusBadRequest, "request body: unexpected data after the JSON value: a second value follows the first; send exactly one")
	default:
		return errorf(http.StatusBadRequest, "request body: unexpected data after the JSON value: %v", err)
	}
}

// maxBody bounds a JSON request body.
const maxBody = 4 << 20

func uintText(n uint64) string { return strconv.FormatUint(n, 10) }

// managerTransport carries this manager's calls to the other managers.
func (s *Server) managerTransport() http.RoundTripper {
	s.proxyOnce.Do(func() {
		s.proxyTr = &http.Transport{
			TLSClientConfig:     s.b.ForwardTLS(),
			ForceAttemptHTTP2:   true,
			TLSHandshakeTimeout: 5 * time.Second,
			DialContext:         (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 8,
		}
	})
	return s.proxyTr
}

// nodeTransport carries this manager's calls to the nodes' own listeners.
func (s *Server) nodeTransport() http.RoundTripper {
	s.nodeOnce.Do(func() {
		s.nodeTr = &http.Transport{
			TLSClientConfig:     s.nodeTLS(),
			TLSHandshakeTimeout: 5 * time.Second,
			DialContext:         (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
		}
	})
	return s.nodeTr
}
