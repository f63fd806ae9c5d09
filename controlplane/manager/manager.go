package manager

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/apiserver"
	"github.com/warrenhq/warren/controlplane/ca"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/raftnode"
	"github.com/warrenhq/warren/controlplane/store"
)

// Config says how to start a manager.
type Config struct {
	DataDir string
	// ListenAddr is where the API and raft listen (default ":2377").
	ListenAddr string
	// AdvertiseAddr is the host:port other nodes reach this manager at.
	AdvertiseAddr string
	Hostname      string
	Logger        *zap.Logger

	// Init creates a new cluster when the data dir is empty.
	Init *InitOptions
	// Join joins an existing cluster as a manager when the data dir is empty.
	Join *JoinOptions

	// OnRemoved is called once if raft removes this manager from the
	// cluster (node demote, or node rm): the node should go on as a worker.
	OnRemoved func(m *Manager)

	// AuditStdout, when set, gets a copy of every audit line (the file is
	// <data-dir>/audit.log).
	AuditStdout io.Writer

	// Images pins service images to digests (apiserver.ImageResolver);
	// nil leaves images unpinned.
	Images apiserver.ImageResolver

	// Raft timeouts; zero uses raftnode's defaults (500/500/250 ms).
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout time.Duration
	SnapshotThreshold                                     uint64
	// SnapshotInterval: zero uses raft's default (2m).
	SnapshotInterval time.Duration
	// TrailingLogs: entries kept in the log after a snapshot; zero uses
	// raft's default (10240).
	TrailingLogs uint64

	// PlanQuiet and PlanMaxDelay coalesce bursts of writes into one plan
	// (coalesce.go); zero uses the defaults, a negative PlanQuiet plans on
	// every write.
	PlanQuiet, PlanMaxDelay time.Duration
}

// InitOptions are the cluster-wide settings chosen at `cluster init`.
type InitOptions struct {
	PodCIDR, ServiceCIDR, Domain string
	WGPort                       uint16
	NodeDownGrace                time.Duration
	CertTTL                      time.Duration
	// Autolock keeps the KEK on disk only under an unlock key (autolock.go).
	Autolock bool
}

// JoinOptions join an existing cluster with a manager token.
type JoinOptions struct {
	Addr  string // an existing manager's API address
	Token string
}

// InitResult is what `cluster init` prints.
type InitResult struct {
	ClusterID    string
	WorkerToken  string
	ManagerToken string
	// UnlockKey is set with autolock; it is shown this once.
	UnlockKey string
}

// Manager is a running manager.
type Manager struct {
	cfg   Config
	log   *zap.Logger
	ident *NodeIdentity

	caCert *ca.CA // verifier (and signer once the key is loaded)
	certs  *ca.CertStore
	kek    []byte

	st    *store.Store
	raft  *raftnode.Node
	api   *apiserver.Server
	audit *apiserver.AuditLog

	ln      net.Listener
	unixLn  net.Listener
	raftLn  *chanListener
	httpLn  *chanListener
	servers []*http.Server

	signerMu sync.Mutex
	signer   *ca.CA

	// heartbeats are kept in the leader's memory, not in raft; a new
	// leader starts every node's clock afresh (planner.Snapshot.LeaderSince).
	peers *client.Client // to the other managers, for watchRemoval

	hbMu       sync.Mutex
	heartbeats map[string]time.Time
	acks       ackTable

	init *InitResult
}

func (c *Config) defaults() error {
	if c.DataDir == "" {
		return errors.New("manager: data dir is required")
	}
	if c.ListenAddr == "" {
		c.ListenAddr = ":2377"
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
	}
	return nil
}

// Open starts a manager from its data directory: it resumes an existing
// one, or creates a new cluster (cfg.Init) or joins one (cfg.Join) when the
// directory is empty. It listens and runs raft; Serve runs the API.
func Open(ctx context.Context, cfg Config) (*Manager, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, log: cfg.Logger.With(zap.String("component", "manager")), st: store.New()}
	id, err := LoadIdentity(cfg.DataDir)
	switch {
	case err == nil:
		if id.Role != api.RoleManager {
			return nil, fmt.Errorf("%s belongs to a worker node; start it with `warren run`", cfg.DataDir)
		}
		m.ident = id
		if err := m.resume(ctx); err != nil {
			return nil, err
		}
	case errors.Is(err, os.ErrNotExist) && cfg.Init != nil:
		if err := m.initCluster(ctx); err != nil {
			return nil, err
		}
	case errors.Is(err, os.ErrNotExist) && cfg.Join != nil:
		if err := m.joinCluster(ctx); err != nil {
			return nil, err
		}
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%s holds no node: run `warren cluster init` or `warren cluster join`", cfg.DataDir)
	default:
		return nil, err
	}
	return m, nil
}

// InitResult is set when Open created a new cluster.
func (m *Manager) InitResult() *InitResult { return m.init }

// NodeID is this manager's node ID.
func (m *Manager) NodeID() string { return m.ident.NodeID }

// Identity is the node's saved identity.
func (m *Manager) Identity() NodeIdentity { return *m.ident }

// Store is the local replica of the cluster state (read-only use).
func (m *Manager) Store() *store.Store { return m.st }

// Raft is the manager's raft node (metrics).
func (m *Manager) Raft() *raftnode.Node { return m.raft }

// CA is the cluster CA verifier.
func (m *Manager) CA() *ca.CA { return m.caCert }

// Certs is this node's certificate store.
func (m *Manager) Certs() *ca.CertStore { return m.certs }

// LocalClient is a client of this manager over its own unix socket (admin).
func (m *Manager) LocalClient() (*client.Client, error) {
	return client.New(client.Config{Socket: filepath.Join(m.cfg.DataDir, SocketName)})
}

// newID is api.NewID on the system's randomness, which does not fail.
func newID() string {
	id, err := api.NewID(rand.Reader)
	if err != nil {
		panic(err)
	}
	return id
}

// advertise returns the raft/API address peers use.
func (m *Manager) advertise() (string, error) {
	if m.cfg.AdvertiseAddr != "" {
		if _, _, err := net.SplitHostPort(m.cfg.AdvertiseAddr); err != nil {
			return "", fmt.Errorf("--advertise-addr %q: %w", m.cfg.AdvertiseAddr, err)
		}
		return m.cfg.AdvertiseAddr, nil
	}
	return "", errors.New("--advertise-addr is required")
}

// startRaft opens the listener and the raft node.
func (m *Manager) startRaft(bootstrap bool) error {
	adv, err := m.advertise()
	if err != nil {
		return err
	}
	tlsCfg := ca.ServerConfig(m.caCert, m.certs)
	ln, err := tls.Listen("tcp", m.cfg.ListenAddr, tlsCfg)
	if err != nil {
		return fmt.Errorf("listen %s: %w", m.cfg.ListenAddr, err)
	}
	m.ln = ln
	m.raftLn = newChanListener(ln.Addr())
	m.httpLn = newChanListener(ln.Addr())
	go m.acceptLoop()

	advAddr, err := net.ResolveTCPAddr("tcp", adv)
	if err != nil {
		return fmt.Errorf("advertise address %q: %w", adv, err)
	}
	raftTLS := ca.RaftClientConfig(m.caCert, m.certs)
	dial := func(ctx context.Context, address string) (net.Conn, error) {
		d := tls.Dialer{Config: raftTLS}
		return d.DialContext(ctx, "tcp", address)
	}
	if err := m.openAudit(); err != nil {
		ln.Close()
		return err
	}
	raftKey, err := m.raftKey()
	if err != nil {
		ln.Close()
		return err
	}
	rn, err := raftnode.New(raftnode.Config{
		EncryptionKey:      raftKey,
		NodeID:             m.ident.NodeID,
		DataDir:            filepath.Join(m.cfg.DataDir, RaftDir),
		Stream:             raftnode.NewStreamLayer(m.raftLn, advAddr, dial),
		Bootstrap:          bootstrap,
		Logger:             m.cfg.Logger.With(zap.String("component", "raft")),
		HeartbeatTimeout:   m.cfg.HeartbeatTimeout,
		ElectionTimeout:    m.cfg.ElectionTimeout,
		LeaderLeaseTimeout: m.cfg.LeaderLeaseTimeout,
		SnapshotThreshold:  m.cfg.SnapshotThreshold,
		SnapshotInterval:   m.cfg.SnapshotInterval,
		TrailingLogs:       m.cfg.TrailingLogs,
	}, m.st)
	if err != nil {
		ln.Close()
		return err
	}
	m.raft = rn

	srv, err := apiserver.New(apiserver.Config{
		Backend: &backend{m: m},
		Logger:  m.cfg.Logger.With(zap.String("component", "api")),
		CAPool:  m.caCert.Pool,
		// Raft and the API share the manager port (ALPN).
		RaftAddrIsAPIAddr: true,
		Audit:             m.audit,
		Images:            m.cfg.Images,
	})
	if err != nil {
		return err
	}
	m.api = srv
	unixLn, err := apiserver.ListenUnix(filepath.Join(m.cfg.DataDir, SocketName))
	if err != nil {
		return err
	}
	m.unixLn = unixLn
	return nil
}

// acceptLoop completes each TLS handshake and hands the connection to raft
// or to the HTTP server according to the negotiated ALPN protocol.
func (m *Manager) acceptLoop() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			m.raftLn.Close()
			m.httpLn.Close()
			return
		}
		go func() {
			tc := c.(*tls.Conn)
			_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
			if err := tc.Handshake(); err != nil {
				m.log.Debug("tls handshake failed", zap.String("remote", c.RemoteAddr().String()), zap.Error(err))
				c.Close()
				return
			}
			_ = tc.SetDeadline(time.Time{})
			if cs := tc.ConnectionState(); cs.NegotiatedProtocol == ca.ALPNRaft {
				if id, gone := raftPeerRemoved(cs, m.st.View()); gone {
					m.log.Warn("refused a raft connection from a removed node", zap.String("node_id", id), zap.String("remote", c.RemoteAddr().String()))
					c.Close()
					return
				}
				m.raftLn.deliver(tc)
			} else {
				m.httpLn.deliver(tc)
			}
		}()
	}
}

// Serve runs the API server and the leader loop until ctx ends.
func (m *Manager) Serve(ctx context.Context) error {
	h := &http.Server{Handler: m.api.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: zapStdLog(m.log)}
	u := &http.Server{Handler: m.api.UnixHandler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: zapStdLog(m.log), ConnContext: apiserver.UnixConnContext}
	m.servers = []*http.Server{h, u}
	errc := make(chan error, 2)
	go func() { errc <- h.Serve(m.httpLn) }()
	go func() { errc <- u.Serve(m.unixLn) }()
	go m.runLeaderLoops(ctx)
	go m.runRenewal(ctx)
	go m.watchRemoval(ctx)
	go m.watchAutolock(ctx)
	go m.replicateImages(ctx)
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
			return nil
		}
		return err
	}
}

// Close stops serving and shuts raft down.
func (m *Manager) Close() error {
	for _, s := range m.servers {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.Shutdown(ctx)
		cancel()
	}
	if m.ln != nil {
		m.ln.Close()
	}
	if m.unixLn != nil {
		m.unixLn.Close()
	}
	var err error
	if m.raft != nil {
		err = m.raft.Shutdown()
	}
	if m.audit != nil {
		m.audit.Close()
	}
	return err
}

// Signer returns the CA with its key, loading the key from raft (it is
// encrypted there with the KEK this manager holds) the first time.
func (m *Manager) Signer() (*ca.CA, error) {
	m.signerMu.Lock()
	defer m.signerMu.Unlock()
	if m.signer != nil {
		return m.signer, nil
	}
	c := m.st.View().Cluster()
	if c == nil || len(c.CA.EncryptedKeyPEM) == 0 {
		return nil, errors.New("cluster CA key not replicated to this manager yet")
	}
	s, err := ca.LoadCA([]byte(c.CA.CertPEM), c.CA.EncryptedKeyPEM, m.kek)
	if err != nil {
		return nil, fmt.Errorf("load cluster CA key: %w", err)
	}
	m.signer = s
	return s, nil
}

// watchRemoval notices that the cluster removed this manager from raft
// (node demote, node rm). A removed server is not always told: the leader
// may stop replicating before the removal reaches it. So a manager that has
// lost contact with the leader asks the other managers, and only a positive
// answer that leaves it out of the membership counts — a manager that is
// merely cut off keeps trying.
func (m *Manager) watchRemoval(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !m.removed(ctx) {
			continue
		}
		m.log.Warn("this manager was removed from raft (node demote or node rm)")
		if m.cfg.OnRemoved != nil {
			m.cfg.OnRemoved(m)
		}
		return
	}
}

func (m *Manager) removed(ctx context.Context) bool {
	st := m.raft.Stats()
	if st.State == "Shutdown" {
		return true
	}
	if m.raft.IsLeader() || (st.LastContact >= 0 && st.LastContact < 3*time.Second) {
		return false
	}
	var others []string
	for _, n := range m.st.View().Nodes() {
		if n.ID != m.ident.NodeID && n.Status.Manager != nil && n.Status.Manager.APIAddr != "" {
			others = append(others, n.Status.Manager.APIAddr)
		}
	}
	if len(others) == 0 {
		return false
	}
	if m.peers == nil {
		c, err := client.New(client.Config{Addrs: others, TLS: ca.ClientConfig(m.caCert, m.certs, ca.ManagerServerName), Timeout: 3 * time.Second})
		if err != nil {
			return false
		}
		m.peers = c
	}
	// The client tries the managers in turn until one answers.
	m.peers.SetAddrs(others)
	info, err := m.peers.Info(ctx)
	if err != nil || len(info.Managers) == 0 {
		return false
	}
	for _, mi := range info.Managers {
		if mi.NodeID == m.ident.NodeID {
			return false
		}
	}
	return true
}

// IssueSelf signs a certificate for this node with the given role, using
// the CA key this manager holds (a demoted manager has no quorum to ask).
func (m *Manager) IssueSelf(role ca.Role, csrPEM []byte) ([]byte, error) {
	s, err := m.Signer()
	if err != nil {
		return nil, err
	}
	ttl := ca.DefaultNodeCertTTL
	if c := m.st.View().Cluster(); c != nil && c.NodeCertTTL > 0 {
		ttl = c.NodeCertTTL.D()
	}
	return s.Sign(csrPEM, ca.Identity{NodeID: m.ident.NodeID, Role: role}, ttl, time.Now(), rand.Reader)
}

// RecordHeartbeat notes that a node was heard from.
func (m *Manager) RecordHeartbeat(nodeID string, at time.Time) {
	m.hbMu.Lock()
	defer m.hbMu.Unlock()
	if m.heartbeats == nil {
		m.heartbeats = map[string]time.Time{}
	}
	if at.After(m.heartbeats[nodeID]) {
		m.heartbeats[nodeID] = at
	}
}
