package apiserver

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/ca"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/raftnode"
	"github.com/warrenhq/warren/controlplane/store"
)

var (
	errNoQuorum  = raftnode.ErrNoQuorum
	errNotLeader = &raftnode.NotLeaderError{LeaderID: "m1"}
	testNow      = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	// testKEK is 32 bytes: secrets are sealed under keys wrapped by it.
	testKEK = "kek-bytes-for-the-api-test-fakes"
)

// fakeBackend applies batches straight to a real store, standing in for raft.
// Several fakes may share one store to model replicated managers.
type fakeBackend struct {
	st      *store.Store
	idx     *uint64
	applyMu *sync.Mutex

	mu       sync.Mutex
	nodeID   string
	leader   bool
	leaderID string
	// leaderAddr is the leader's raft address (default "raft:<leaderID>").
	leaderAddr string
	noQuorum   bool
	// storageErr, when set, fails writes as raftnode does when this
	// manager cannot write its raft log.
	storageErr error
	// beforeApply, when set, runs before each Apply reaches the store: a
	// write of another party landing between a handler's read and its batch.
	beforeApply func()
	// catchingUp models a restarted manager whose store is behind its log.
	catchingUp bool
	members    []Member
	voterAdd   []string
	nonvoter   []string

	ca      *ca.CA
	blobDir string
	fwdTLS  *tls.Config
}

func (f *fakeBackend) View() *store.View { return f.st.View() }
func (f *fakeBackend) WaitIndex(ctx context.Context, after uint64) (uint64, error) {
	return f.st.WaitIndex(ctx, after)
}

func (f *fakeBackend) Apply(ctx context.Context, b *store.Batch) (uint64, error) {
	f.mu.Lock()
	leader, nq, se, before := f.leader, f.noQuorum, f.storageErr, f.beforeApply
	f.mu.Unlock()
	if before != nil {
		before()
	}
	if se != nil {
		return 0, se
	}
	if nq {
		return 0, fmt.Errorf("apply: %w", errNoQuorum)
	}
	if !leader {
		return 0, errNotLeader
	}
	data, err := store.Encode(b)
	if err != nil {
		return 0, err
	}
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	*f.idx++
	return *f.idx, f.st.Apply(*f.idx, data)
}

func (f *fakeBackend) IsLeader() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.leader }
func (f *fakeBackend) Leader() (string, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.leaderAddr != "" {
		return f.leaderID, f.leaderAddr
	}
	return f.leaderID, "raft:" + f.leaderID
}
func (f *fakeBackend) AwaitLeader(context.Context) (string, string, error) {
	id, addr := f.Leader()
	f.mu.Lock()
	se := f.storageErr
	f.mu.Unlock()
	if id == "" && se != nil {
		return "", "", fmt.Errorf("no leader: %w (%w)", se, errNoQuorum)
	}
	if id == "" {
		return "", "", fmt.Errorf("no leader: %w", errNoQuorum)
	}
	return id, addr, nil
}
func (f *fakeBackend) VerifyLeader(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.noQuorum {
		return errNoQuorum
	}
	return nil
}
func (f *fakeBackend) ReadLease() time.Duration { return 0 }
func (f *fakeBackend) WaitCaughtUp(ctx context.Context) error {
	for {
		f.mu.Lock()
		behind := f.catchingUp
		f.mu.Unlock()
		if !behind {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: its store is at index 1 of 9", raftnode.ErrCatchingUp)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (f *fakeBackend) setCatchingUp(v bool) { f.mu.Lock(); f.catchingUp = v; f.mu.Unlock() }

func (f *fakeBackend) AddNonvoter(id, addr string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nonvoter = append(f.nonvoter, id)
	f.members = append(f.members, Member{ID: id, Addr: addr})
	return nil
}
func (f *fakeBackend) AddVoter(id, addr string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.voterAdd = append(f.voterAdd, id)
	for i := range f.members {
		if f.members[i].ID == id {
			f.members[i].Voter = true
		}
	}
	return nil
}
func (f *fakeBackend) RemoveServer(id string) error { return nil }
func (f *fakeBackend) DemoteVoter(id string) error  { return nil }
func (f *fakeBackend) Members() ([]Member, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Member(nil), f.members...), nil
}
func (f *fakeBackend) NodeID() string          { return f.nodeID }
func (f *fakeBackend) Signer() Signer          { return f.ca }
func (f *fakeBackend) KEK() []byte             { return []byte(testKEK) }
func (f *fakeBackend) BlobDir() string         { return f.blobDir }
func (f *fakeBackend) ForwardTLS() *tls.Config { return f.fwdTLS }

// cluster is a CA, a store with a cluster object, one manager "m1" and one
// worker "w1", and a certificate per kind of caller.
type cluster struct {
	ca, other     *ca.CA
	st            *store.Store
	idx           uint64
	applyMu       sync.Mutex
	workerToken   string
	managerToken  string
	certs         map[string]tls.Certificate // by caller kind
	managerServer tls.Certificate
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{st: store.New(), certs: map[string]tls.Certificate{}}
	var err error
	if c.ca, err = ca.NewCA(testNow, rand.Reader, "test-cluster"); err != nil {
		t.Fatal(err)
	}
	if c.other, err = ca.NewCA(testNow, rand.Reader, "other-cluster"); err != nil {
		t.Fatal(err)
	}
	issue := func(from *ca.CA, id ca.Identity) tls.Certificate {
		certPEM, keyPEM, err := from.Issue(id, 0, testNow, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return cert
	}
	c.certs["worker"] = issue(c.ca, ca.Identity{NodeID: "w1", Role: ca.RoleWorker})
	c.certs["manager"] = issue(c.ca, ca.Identity{NodeID: "m1", Role: ca.RoleManager})
	c.certs["admin"] = issue(c.ca, ca.Identity{NodeID: "op", Role: ca.RoleAdmin})
	c.certs["other-ca"] = issue(c.other, ca.Identity{NodeID: "op", Role: ca.RoleAdmin})
	c.managerServer = c.certs["manager"]

	wt, mt, toks, err := ca.NewJoinTokens(c.ca.Digest(), testNow, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c.workerToken, c.managerToken = wt, mt
	c.apply(t, &store.Batch{
		Cluster: &api.Cluster{
			ID: "test-cluster", CreatedAt: testNow,
			Network: api.ClusterNetworkSpec{PodCIDR: "10.42.0.0/16", ServiceCIDR: "10.43.0.0/16", Domain: "warren.local"},
			CA:      api.ClusterCA{CertPEM: string(c.ca.CertPEM()), Digest: c.ca.Digest()},
			Tokens:  toks,
		},
		PutNodes: []api.Node{
			{ID: "m1", Spec: api.NodeSpec{Role: api.RoleManager, Availability: api.AvailabilityActive},
				Status: api.NodeStatus{State: api.NodeReady, Hostname: "mgr-1", Manager: &api.ManagerStatus{RaftAddr: "raft:m1"}}},
			{ID: "w1", Spec: api.NodeSpec{Role: api.RoleWorker, Availability: api.AvailabilityActive},
				Status: api.NodeStatus{State: api.NodeReady, Hostname: "worker-1"}},
		},
	})
	return c
}

func (c *cluster) apply(t *testing.T, b *store.Batch) {
	t.Helper()
	data, err := store.Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	c.applyMu.Lock()
	defer c.applyMu.Unlock()
	c.idx++
	if err := c.st.Apply(c.idx, data); err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) backend(t *testing.T, nodeID string, leader bool) *fakeBackend {
	return &fakeBackend{
		st: c.st, idx: &c.idx, applyMu: &c.applyMu,
		nodeID: nodeID, leader: leader, leaderID: "m1",
		members: []Member{{ID: "m1", Addr: "raft:m1", Voter: true, Leader: true}},
		ca:      c.ca, blobDir: t.TempDir(),
		fwdTLS: &tls.Config{
			MinVersion: tls.VersionTLS13, RootCAs: c.ca.Pool(), ServerName: ca.ManagerServerName,
			Certificates: []tls.Certificate{c.certs["manager"]},
		},
	}
}

// serve starts s on a TLS listener that requests (but does not verify)
// client certificates, so the API's own verification is what is tested.
func (c *cluster) serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		ClientAuth:   tls.RequestClientCert,
		Certificates: []tls.Certificate{c.managerServer},
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func (c *cluster) newServer(t *testing.T, b Backend) *Server {
	t.Helper()
	return c.newServerWith(t, Config{Backend: b})
}

// newServerWith is newServer with more of the Config set.
func (c *cluster) newServerWith(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.CAPool, cfg.Now = c.ca.Pool, func() time.Time { return testNow }
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tlsFor is the client TLS config of a kind of caller ("none" has no cert).
func (c *cluster) tlsFor(kind string) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: c.ca.Pool(), ServerName: ca.ManagerServerName}
	if cert, ok := c.certs[kind]; ok {
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}

func (c *cluster) client(t *testing.T, kind string, addrs ...string) *client.Client {
	t.Helper()
	cl, err := client.New(client.Config{Addrs: addrs, TLS: c.tlsFor(kind), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func hostOf(srv *httptest.Server) string { return srv.Listener.Addr().String() }
