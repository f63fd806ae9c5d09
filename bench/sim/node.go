//go:build linux

package sim

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenhq/warren/controlplane/agent"
	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/ca"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/manager"
	"github.com/warrenhq/warren/runtime"
	"github.com/warrenhq/warren/runtime/fake"
)

// NodeOptions say how a simulated node's runtime behaves.
type NodeOptions struct {
	// StartDelay is how long a task takes from Start to running.
	StartDelay time.Duration
	// CrashRate is the probability that a task, once running, exits with
	// code 1 after a random time up to CrashWithin.
	CrashRate   float64
	CrashWithin time.Duration
	// Heartbeat is the agent's heartbeat interval (0: the agent's default).
	Heartbeat time.Duration
}

// Node is one simulated node: the real agent and worker on a fake runtime,
// talking to the managers over its own mTLS connections.
type Node struct {
	ID       string
	Hostname string
	dir      string
	opts     NodeOptions
	agent    *agent.Agent
	worker   *runtime.Worker
	exec     *fake.Executor
	mgr      *countingManager
	net      *tableNet

	mu      sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
	running atomic.Int64 // tasks whose last report is running
}

// Join enrols a node through addr with token (a real join: its own key and
// a CSR signed by the cluster CA) and builds its agent. It does not start it.
func Join(ctx context.Context, dir, hostname, addr, token string, o NodeOptions, w *Watch, l *Ledger) (*Node, error) {
	resp, certs, verifier, err := manager.Enroll(ctx, dir, addr, token, client.JoinRequest{Role: "worker", Hostname: hostname, Addr: "127.0.0.1"})
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", hostname, err)
	}
	tlsCfg := ca.ClientConfig(verifier, certs, ca.ManagerServerName)
	n := &Node{ID: resp.NodeID, Hostname: hostname, dir: dir, opts: o, exec: fake.New()}
	n.net = &tableNet{node: n, watch: w}
	// Heartbeats get connections of their own so their bytes are counted
	// apart from assignments and status reports.
	hb, hbTr, hbBytes, err := countingClient(resp.Managers, tlsCfg)
	if err != nil {
		return nil, err
	}
	rest, restTr, restBytes, err := countingClient(resp.Managers, tlsCfg)
	if err != nil {
		return nil, err
	}
	// And the watch its own, so its bytes per change are counted apart.
	watch, watchTr, watchBytes, err := countingClient(resp.Managers, tlsCfg)
	if err != nil {
		return nil, err
	}
	n.mgr = &countingManager{ledger: l, hb: hb, rest: rest, watch: watch, trs: []*http.Transport{hbTr, restTr, watchTr}, hbBytes: hbBytes, restBytes: restBytes, watchBytes: watchBytes}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	wgKey := base64.StdEncoding.EncodeToString(key)
	n.worker, err = runtime.NewWorker(runtime.WorkerOptions{
		Executor: &delayedExecutor{Executor: n.exec, delay: o.StartDelay, ledger: l}, DataDir: dir, Logger: nil,
		Reporter: n.report,
	})
	if err != nil {
		return nil, err
	}
	n.agent, err = agent.New(agent.Config{
		NodeID: n.ID, DataDir: dir, Manager: n.mgr, Managers: resp.Managers,
		Executor: n.worker, Network: n.net, Heartbeat: o.Heartbeat,
		RetryMin: 200 * time.Millisecond, RetryMax: 2 * time.Second,
		Registration: func() api.NodeRegistration {
			return api.NodeRegistration{
				NodeID: n.ID, Hostname: hostname, Addr: "127.0.0.1", OS: "linux", Arch: "amd64",
				Capacity: api.Resources{NanoCPUs: 16e9, MemoryBytes: 64 << 30},
				Network:  api.NodeNetwork{WGPublicKey: wgKey, Subnet: resp.Network.Subnet},
				Version:  "sim",
			}
		},
	})
	if err != nil {
		return nil, err
	}
	return n, nil
}

// report is the worker's reporter: it forwards to the agent and plays the
// crash lottery for tasks that just started.
func (n *Node) report(taskID string, st api.TaskStatus) {
	if st.State == api.TaskRunning {
		n.running.Add(1)
		if n.opts.CrashRate > 0 && mrand.Float64() < n.opts.CrashRate {
			after := time.Duration(mrand.Int64N(int64(max(n.opts.CrashWithin, time.Millisecond))))
			time.AfterFunc(after, func() { _ = n.exec.Exit(taskID, 1) })
		}
	} else {
		n.running.Add(-1)
	}
	n.agent.Report(taskID, st)
}

// Start runs the agent and the worker until Stop (or ctx ends).
func (n *Node) Start(ctx context.Context) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cancel != nil {
		return
	}
	ctx, n.cancel = context.WithCancel(ctx)
	n.done = make(chan struct{})
	go func() { _ = n.worker.Run(ctx) }()
	go func() {
		defer close(n.done)
		_ = n.agent.Run(ctx)
	}()
}

// Disconnect stops the node's agent and drops its connections, as a node
// cut off from the managers; its tasks keep running. Start reconnects it.
func (n *Node) Disconnect() {
	n.mu.Lock()
	cancel, done := n.cancel, n.done
	n.cancel = nil
	n.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
	n.mgr.closeIdle()
}

// Close stops the node for good.
func (n *Node) Close() {
	n.Disconnect()
	n.worker.Close()
	_ = n.agent.Close()
}

// Heartbeats returns how many heartbeats succeeded and the bytes the
// heartbeat connections moved (both directions, TLS records included).
func (n *Node) Heartbeats() (ok int64, bytes int64) {
	return n.mgr.hbOK.Load(), n.mgr.hbBytes.Load()
}

// OtherBytes is what the assignments and status connections moved.
func (n *Node) OtherBytes() int64 { return n.mgr.restBytes.Load() + n.mgr.watchBytes.Load() }

// LastHeartbeat is when the last heartbeat succeeded.
func (n *Node) LastHeartbeat() time.Time {
	if t := n.mgr.lastOK.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

// countingManager is agent.Manager over two clients, heartbeats on one.
type countingManager struct {
	ledger                         *Ledger
	hb, rest, watch                *client.Client
	trs                            []*http.Transport
	hbBytes, restBytes, watchBytes *atomic.Int64
	hbOK                           atomic.Int64
	changes                        atomic.Int64 // assignments answers that were not "unchanged"
	lastOK                         atomic.Pointer[time.Time]

	// rtts are the round trips of the heartbeats that succeeded since the
	// last HeartbeatRTTs: a drain waits for the beat carrying each node's
	// new table index, so their latency bounds how fast stops are released.
	rttMu sync.Mutex
	rtts  []time.Duration
}

func (m *countingManager) Register(ctx context.Context, reg api.NodeRegistration) error {
	start := time.Now()
	err := m.hb.Register(ctx, reg)
	if err == nil {
		m.hbOK.Add(1)
		now := time.Now()
		m.lastOK.Store(&now)
		m.rttMu.Lock()
		m.rtts = append(m.rtts, now.Sub(start))
		m.rttMu.Unlock()
	}
	return err
}

// HeartbeatRTTs returns the round trips of the heartbeats that succeeded
// since the last call, and forgets them.
func (n *Node) HeartbeatRTTs() []time.Duration {
	m := n.mgr
	m.rttMu.Lock()
	defer m.rttMu.Unlock()
	out := m.rtts
	m.rtts = nil
	return out
}

func (m *countingManager) Assignments(ctx context.Context, index uint64, wait time.Duration) (*api.Assignments, error) {
	a, err := m.watch.Assignments(ctx, index, wait)
	if err == nil && a.Index != index {
		m.changes.Add(1)
	}
	return a, err
}

func (m *countingManager) AssignmentsFrom(ctx context.Context, index uint64, base string, wait time.Duration) (*api.Assignments, error) {
	a, err := m.watch.AssignmentsFrom(ctx, index, base, wait)
	if err == nil && a.Index != index {
		m.changes.Add(1)
	}
	return a, err
}

func (m *countingManager) ReportStatus(ctx context.Context, rep api.StatusReport) error {
	if m.ledger != nil {
		m.ledger.sending(rep.Tasks)
	}
	err := m.rest.ReportStatus(ctx, rep)
	if err == nil && m.ledger != nil {
		m.ledger.reported(rep.Tasks)
	}
	return err
}

func (m *countingManager) SetAddrs(addrs []string) {
	if os.Getenv("WARREN_SIM_NO_SPREAD") == "1" {
		// The comparison run: every node on the first manager listed, as
		// agents were before they spread (agent/spread.go).
		addrs = slices.Sorted(slices.Values(addrs))
	}
	m.hb.SetAddrs(addrs)
	m.rest.SetAddrs(addrs)
	m.watch.SetAddrs(addrs)
}

func (m *countingManager) closeIdle() {
	for _, tr := range m.trs {
		tr.CloseIdleConnections()
	}
}

// countingClient is a client whose connections count the bytes they move.
func countingClient(addrs []string, cfg *tls.Config) (*client.Client, *http.Transport, *atomic.Int64, error) {
	n := &atomic.Int64{}
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		TLSClientConfig:     cfg.Clone(),
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 10 * time.Second,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return countConn{Conn: c, n: n}, nil
		},
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
	}
	c, err := client.New(client.Config{Addrs: addrs, Transport: tr, Timeout: 30 * time.Second})
	return c, tr, n, err
}

// tableNet is the node's Network: it keeps nothing but tells the Watch
// what each applied service table says.
type tableNet struct {
	node  *Node
	watch *Watch
	index atomic.Uint64
}

func (t *tableNet) SetNetwork(_ context.Context, a *api.Assignments) error {
	t.index.Store(a.Index)
	if t.watch != nil {
		t.watch.applied(t.node, a)
	}
	return nil
}

// delayedExecutor is the fake executor whose tasks take delay to start.
// It tells the ledger of every task it is asked to start.
type delayedExecutor struct {
	*fake.Executor
	delay  time.Duration
	ledger *Ledger
}

func (e *delayedExecutor) Controller(t *api.Task, o runtime.ControllerOptions) (runtime.Controller, error) {
	if e.ledger != nil {
		e.ledger.started(t)
	}
	c, err := e.Executor.Controller(t, o)
	if err != nil || e.delay <= 0 {
		return c, err
	}
	return &delayedController{Controller: c, delay: e.delay}, nil
}

type delayedController struct {
	runtime.Controller
	delay time.Duration
}

func (c *delayedController) Start(ctx context.Context) error {
	t := time.NewTimer(c.delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	return c.Controller.Start(ctx)
}

// Info forwards the fake's address so tasks become backends.
func (c *delayedController) Info() runtime.Info {
	return c.Controller.(runtime.Inspector).Info()
}

// countConn counts the bytes read and written on a connection.
type countConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countConn) Read(b []byte) (int, error) {
	k, err := c.Conn.Read(b)
	c.n.Add(int64(k))
	return k, err
}

func (c countConn) Write(b []byte) (int, error) {
	k, err := c.Conn.Write(b)
	c.n.Add(int64(k))
	return k, err
}
