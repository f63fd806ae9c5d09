// Package raftnodetest runs real raft clusters for tests and benchmarks:
// managers on loopback TCP with mutual TLS from a throwaway CA, each with its
// own data dir, started, killed and restarted on the same dir and address.
//
// Set WARREN_TEST_RAFT_LOG=1 to see raft's logs.
//
// It is test support only: production code must not import it. Like the
// packages it exercises, it must not import anything kernel- or
// runtime-facing.
package raftnodetest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/raftnode"
	"github.com/warrenhq/warren/controlplane/store"
)

const alpnRaft = "warren-raft"

// testCA is a throwaway certificate authority for mutual TLS between test
// managers.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "warren test ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

var serial = struct {
	sync.Mutex
	n int64
}{n: 1}

// issue returns a manager certificate valid for 127.0.0.1 as both server
// and client, as the real CA issues them.
func (ca *testCA) issue(t testing.TB, id string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial.Lock()
	serial.n++
	sn := serial.n
	serial.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(sn),
		Subject:      pkix.Name{CommonName: id, OrganizationalUnit: []string{string(api.RoleManager)}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// Member is one manager of a test cluster. Node and Store are nil while it
// is stopped; ID, Addr and Dir survive restarts.
type Member struct {
	ID, Addr, Dir string
	cert          tls.Certificate
	Node          *raftnode.Node
	Store         *store.Store
}

// Cluster is a set of managers sharing one CA.
type Cluster struct {
	t       testing.TB
	ca      *testCA
	Members []*Member
	tune    func(*raftnode.Config)
}

// NewCluster prepares n managers (m0…) without starting them; t.Cleanup
// shuts down whatever is still running. tune, if set, adjusts each Config.
func NewCluster(t testing.TB, n int, tune func(*raftnode.Config)) *Cluster {
	c := &Cluster{t: t, ca: newTestCA(t), tune: tune}
	base := t.TempDir()
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("m%d", i)
		c.Members = append(c.Members, &Member{ID: id, Addr: "127.0.0.1:0", Dir: filepath.Join(base, id), cert: c.ca.issue(t, id)})
	}
	t.Cleanup(func() {
		for _, m := range c.Members {
			if m.Node != nil {
				_ = m.Node.Shutdown()
			}
		}
	})
	return c
}

func testLogger() *zap.Logger {
	// Silent by default: killing leaders makes raft log errors by design,
	// and they would interleave with benchmark output.
	if os.Getenv("WARREN_TEST_RAFT_LOG") == "" {
		return zap.NewNop()
	}
	cfg := zap.NewDevelopmentConfig()
	cfg.Level = zap.NewAtomicLevelAt(zapcore.DebugLevel)
	l, _ := cfg.Build()
	return l
}

// Start (re)starts member i on its data dir and address. Only m0 is ever
// configured to bootstrap — on every start, as a real deployment would
// keep the flag — so a restart also proves existing state is never
// bootstrapped again.
func (c *Cluster) Start(i int) *Member {
	t := c.t
	t.Helper()
	m := c.Members[i]
	serverConf := &tls.Config{
		Certificates: []tls.Certificate{m.cert},
		ClientCAs:    c.ca.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		NextProtos:   []string{alpnRaft},
		MinVersion:   tls.VersionTLS13,
	}
	var ln net.Listener
	var err error
	for try := 0; try < 50; try++ { // the old socket may take a moment to release the port
		if ln, err = net.Listen("tcp", m.Addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen %s: %v", m.Addr, err)
	}
	m.Addr = ln.Addr().String()
	clientConf := &tls.Config{
		Certificates: []tls.Certificate{m.cert},
		RootCAs:      c.ca.pool,
		NextProtos:   []string{alpnRaft},
		MinVersion:   tls.VersionTLS13,
	}
	dialer := &tls.Dialer{Config: clientConf}
	dial := func(ctx context.Context, address string) (net.Conn, error) {
		conn, err := dialer.DialContext(ctx, "tcp", address)
		if err != nil {
			return nil, err
		}
		if p := conn.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != alpnRaft {
			conn.Close()
			return nil, fmt.Errorf("peer %s negotiated %q, not %s", address, p, alpnRaft)
		}
		return conn, nil
	}
	cfg := raftnode.Config{
		NodeID:    m.ID,
		DataDir:   m.Dir,
		Stream:    raftnode.NewStreamLayer(tls.NewListener(ln, serverConf), nil, dial),
		Bootstrap: i == 0,
		Logger:    testLogger(),
	}
	if c.tune != nil {
		c.tune(&cfg)
	}
	m.Store = store.New()
	m.Node, err = raftnode.New(cfg, m.Store)
	if err != nil {
		ln.Close()
		t.Fatalf("start %s: %v", m.ID, err)
	}
	return m
}

// Stop shuts member i down as a crash would look to its peers.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	m := c.Members[i]
	if err := m.Node.Shutdown(); err != nil {
		c.t.Fatalf("shutdown %s: %v", m.ID, err)
	}
	m.Node = nil
}

// Leader waits until exactly one running member is leader and all running
// members agree on it.
func (c *Cluster) Leader(timeout time.Duration) *Member {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var lead *Member
		agree := true
		for _, m := range c.Members {
			if m.Node == nil {
				continue
			}
			if m.Node.IsLeader() {
				if lead != nil {
					agree = false
				}
				lead = m
			}
		}
		if lead != nil && agree {
			for _, m := range c.Members {
				if m.Node != nil {
					if id, _ := m.Node.Leader(); id != lead.ID {
						agree = false
					}
				}
			}
			if agree {
				return lead
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("no agreed leader within %v", timeout)
	return nil
}

// Form bootstraps m0 and joins every other member, the way managers join:
// odd ones directly as voters, even ones first as non-voters that are then
// promoted once added.
func (c *Cluster) Form() {
	t := c.t
	t.Helper()
	c.Start(0)
	lead := c.Leader(10 * time.Second)
	for i := 1; i < len(c.Members); i++ {
		m := c.Start(i)
		if i%2 == 0 {
			if err := lead.Node.AddNonvoter(m.ID, m.Addr); err != nil {
				t.Fatalf("add nonvoter %s: %v", m.ID, err)
			}
		}
		if err := lead.Node.AddVoter(m.ID, m.Addr); err != nil {
			t.Fatalf("add voter %s: %v", m.ID, err)
		}
	}
}

// WaitAll waits until every running store has applied index.
func (c *Cluster) WaitAll(index uint64, timeout time.Duration) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, m := range c.Members {
		if m.Node == nil {
			continue
		}
		if _, err := m.Store.WaitIndex(ctx, index-1); err != nil {
			c.t.Fatalf("%s stuck at index %d, want %d: %v", m.ID, m.Store.Index(), index, err)
		}
	}
}

// ApplyAnywhere retries a write against whichever member leads until it is
// acknowledged or the deadline passes.
func (c *Cluster) ApplyAnywhere(b *store.Batch, timeout time.Duration) uint64 {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, m := range c.Members {
			if m.Node == nil || !m.Node.IsLeader() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			idx, err := m.Node.Apply(ctx, b)
			cancel()
			if err == nil {
				return idx
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("write not acknowledged within %v", timeout)
	return 0
}

// PutTask is a batch that creates one assigned task.
func PutTask(id string) *store.Batch {
	return &store.Batch{Now: time.Unix(1700000000, 0), PutTasks: []api.Task{{
		ID: id, ServiceID: "svc", NodeID: "n1", DesiredState: api.TaskRunning,
		Status: api.TaskStatus{State: api.TaskAssigned},
	}}}
}

// StateBytes is the store's snapshot, for byte-exact comparison.
func StateBytes(t testing.TB, s *store.Store) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := s.Snapshot(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// RequireSameState fails unless every running member holds byte-identical
// state.
func (c *Cluster) RequireSameState() {
	c.t.Helper()
	var first *Member
	var want []byte
	for _, m := range c.Members {
		if m.Node == nil {
			continue
		}
		got := StateBytes(c.t, m.Store)
		if first == nil {
			first, want = m, got
			continue
		}
		if !bytes.Equal(got, want) {
			c.t.Fatalf("%s (index %d) and %s (index %d) hold different state", m.ID, m.Store.Index(), first.ID, first.Store.Index())
		}
	}
}

// RootCAs is the pool of the cluster's throwaway CA, for tests that dial a
// member themselves.
func (c *Cluster) RootCAs() *x509.CertPool { return c.ca.pool }
