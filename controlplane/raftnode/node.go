package raftnode

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/store"
)

// Config configures one manager's raft member.
type Config struct {
	// NodeID is the raft server ID; Warren uses the manager's node ID.
	NodeID string
	// DataDir holds raft.db (log and stable store) and snapshots/.
	DataDir string
	// Stream carries raft RPCs; see NewStreamLayer.
	Stream raft.StreamLayer
	// Bootstrap makes this manager the first voter of a new cluster. It is
	// honoured only when DataDir holds no raft state: re-bootstrapping an
	// existing member would fork the cluster's history.
	Bootstrap bool
	Logger    *zap.Logger

	// Defaults: 500ms, 500ms, 250ms. With these a killed leader is replaced
	// in about a second and a half on a LAN.
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout time.Duration
	// SnapshotThreshold and SnapshotInterval default to raft's (8192, 120s).
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// TrailingLogs is how many entries stay in the log after a snapshot, so
	// that a briefly absent follower catches up from the log rather than by
	// a full snapshot. Default raft's (10240).
	TrailingLogs uint64
	// NoQuorumWait bounds how long Apply waits for a leader to appear before
	// it reports ErrNoQuorum. Default 3×ElectionTimeout.
	NoQuorumWait time.Duration
	// EncryptionKey, when set (32 bytes), seals every log entry and snapshot
	// this node writes (sealed.go). The caller keeps it off this disk in
	// clear: the manager seals it under its KEK.
	EncryptionKey []byte
}

func (c *Config) setDefaults() error {
	if c.NodeID == "" || c.DataDir == "" || c.Stream == nil {
		return errors.New("raft config: NodeID, DataDir and Stream are required")
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = 500 * time.Millisecond
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = 500 * time.Millisecond
	}
	if c.LeaderLeaseTimeout == 0 {
		c.LeaderLeaseTimeout = 250 * time.Millisecond
	}
	if c.NoQuorumWait == 0 {
		c.NoQuorumWait = 3 * c.ElectionTimeout
	}
	return nil
}

var (
	// ErrNoQuorum means no leader could be reached or elected: fewer than a
	// majority of managers are up. Reads from the local store still work.
	ErrNoQuorum = errors.New("cluster has no quorum: writes are refused (read-only mode)")
	// ErrNotLeader is what errors.Is matches for a *NotLeaderError.
	ErrNotLeader = errors.New("not the raft leader")
	// ErrTooLarge rejects a batch above MaxEntryBytes; split it.
	ErrTooLarge = errors.New("raft entry too large")
	// ErrShutdown is returned after Shutdown.
	ErrShutdown = errors.New("raft node is shut down")
	// ErrCatchingUp means the local store has not yet applied the log this
	// manager must serve from (see WaitCaughtUp).
	ErrCatchingUp = errors.New("this manager is still catching up with the raft log")
)

// NotLeaderError is returned by writes on a manager that is not the leader.
// LeaderID and LeaderAddr name the current leader for forwarding.
type NotLeaderError struct {
	LeaderID, LeaderAddr string
}

func (e *NotLeaderError) Error() string {
	return fmt.Sprintf("not the raft leader: leader is %s at %s", e.LeaderID, e.LeaderAddr)
}

// Unwrap lets errors.Is(err, ErrNotLeader) match.
func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }

// Member is one server in the raft configuration.
type Member struct {
	ID, Addr      string
	Voter, Leader bool
}

// Stats are raft figures for metrics and `warren node ls`.
type Stats struct {
	State        string
	Term         uint64
	LastIndex    uint64
	CommitIndex  uint64
	AppliedIndex uint64
	// LastContact is the time since a follower last heard from the leader;
	// 0 on the leader, -1 if never.
	LastContact time.Duration
	// Elections is how many leader changes this manager saw since it started.
	Elections uint64
	// AppliedEntries and AppliedBytes count the commands this manager's FSM
	// applied since it started.
	AppliedEntries, AppliedBytes uint64
}

// Node is one manager's raft member.
type Node struct {
	cfg   Config
	raft  *raft.Raft
	trans *raft.NetworkTransport
	bolt  *raftboltdb.BoltStore
	store *store.Store
	logs  raft.LogStore
	// watched is logs, remembering whether its last write failed.
	watched *watchedLogs
	// startIndex is the last index of the log when this node started; see
	// CaughtUp.
	startIndex uint64

	notify chan bool
	done   chan struct{}
	wg     sync.WaitGroup

	leaderCh chan bool // capacity 1, latest value

	// noLeaderSince is when this manager last saw the cluster without a
	// known leader (UnixNano, 0 while one is known). Once the cluster has
	// been leaderless for NoQuorumWait, writes fail at once instead of each
	// waiting out the same timeout.
	noLeaderSince atomic.Int64
	fsm           *countingFSM
	// leaders counts the leader changes this manager saw; leaderSince is
	// when it last became leader (UnixNano).
	leadersMu   sync.Mutex
	leaders     leaderTracker
	leaderSince atomic.Int64
	// readyTerm is the term in which a Barrier last completed here.
	readyTerm atomic.Uint64
	// earlyCampaigns counts the elections watchLeader started early.
	earlyCampaigns atomic.Uint64

	shutdownOnce sync.Once
	shutdownErr  error
}

// MaxEntryBytes bounds one encoded batch. Raft sends up to 64 entries per
// AppendEntries RPC and keeps recent entries in memory, so a few huge
// entries would cost hundreds of megabytes; about 1,000 task placements
// (~0.6 MB) per batch already amortise the fsync.
const MaxEntryBytes = 8 << 20

const (
	boltFile     = "raft.db"
	snapshotsDir = "snapshots"
	// retainSnapshots: two, so one damaged snapshot still leaves a restore.
	retainSnapshots = 2
	// configTimeout bounds enqueueing membership changes.
	configTimeout = 10 * time.Second
)

// HasState reports whether dataDir already holds raft state (a log, a term
// or a snapshot). Such a directory must never be bootstrapped again. It
// opens the log read-only and fails rather than waits if a running node
// holds it.
func HasState(dataDir string) (bool, error) {
	path := filepath.Join(dataDir, boltFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		snaps, err := os.ReadDir(filepath.Join(dataDir, snapshotsDir))
		return err == nil && len(snaps) > 0, nil
	}
	b, err := raftboltdb.New(raftboltdb.Options{
		Path:        path,
		BoltOptions: &bbolt.Options{ReadOnly: true, Timeout: time.Second},
	})
	if err != nil {
		return false, fmt.Errorf("open raft log %s: %w", path, err)
	}
	defer b.Close()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dataDir, retainSnapshots, newHCLog(zap.NewNop()))
	if err != nil {
		return false, fmt.Errorf("open snapshots: %w", err)
	}
	ok, err := raft.HasExistingState(b, b, snaps)
	if err != nil {
		return false, fmt.Errorf("inspect raft state in %s: %w", dataDir, err)
	}
	return ok, nil
}

// New starts a raft member applying to st, which must be empty: raft
// rebuilds it from the latest snapshot and the log. The Node owns
// cfg.Stream from here on: Shutdown closes it, and so does a failing New.
func New(cfg Config, st *store.Store) (*Node, error) {
	if err := cfg.setDefaults(); err != nil {
		if cfg.Stream != nil {
			_ = cfg.Stream.Close()
		}
		return nil, err
	}
	if st == nil || st.Index() != 0 {
		_ = cfg.Stream.Close()
		return nil, errors.New("raft node: store must be new and empty")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		_ = cfg.Stream.Close()
		return nil, fmt.Errorf("create raft data dir: %w", err)
	}
	hlog := newHCLog(cfg.Logger.Named("raft"))

	// NoSync stays false: an acknowledged entry must survive power loss.
	bolt, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(cfg.DataDir, boltFile),
		BoltOptions: &bbolt.Options{Timeout: 5 * time.Second},
	})
	if err != nil {
		_ = cfg.Stream.Close()
		return nil, fmt.Errorf("open raft log: %w", err)
	}
	n := &Node{cfg: cfg, bolt: bolt, store: st, notify: make(chan bool, 8), leaderCh: make(chan bool, 1), done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			if n.trans != nil {
				_ = n.trans.Close() // closes the stream too
			} else {
				_ = cfg.Stream.Close()
			}
			_ = bolt.Close()
		}
	}()
	// Only now, holding bolt's lock, is no other process snapshotting here.
	if err := removeUnfinishedSnapshots(cfg.DataDir, cfg.Logger); err != nil {
		return nil, err
	}
	var logStore raft.LogStore = bolt
	fileSnaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, retainSnapshots, hlog)
	if err != nil {
		return nil, fmt.Errorf("open raft snapshots: %w", err)
	}
	var snaps raft.SnapshotStore = fileSnaps
	if cfg.EncryptionKey != nil {
		if logStore, err = newSealedLogs(bolt, cfg.EncryptionKey); err != nil {
			return nil, err
		}
		if snaps, err = newSealedSnapshots(fileSnaps, cfg.EncryptionKey); err != nil {
			return nil, err
		}
	}
	below := &lastErrorLogs{LogStore: logStore}
	logs := newLogCache(below, logCacheEntries, logCacheBytes)
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  cfg.Stream,
		MaxPool: 5,
		Timeout: 10 * time.Second,
		Logger:  hlog,
	})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	if cfg.SnapshotThreshold != 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.SnapshotInterval != 0 {
		rc.SnapshotInterval = cfg.SnapshotInterval
	}
	if cfg.TrailingLogs != 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	rc.Logger = hlog
	// Raft blocks on NotifyCh; forward() drains it at once into the
	// latest-value LeaderCh, so a slow reader never stalls raft.
	rc.NotifyCh = n.notify
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("raft config: %w", err)
	}

	n.watched = &watchedLogs{LogStore: logs, below: below}

	exists, err := raft.HasExistingState(logs, bolt, snaps)
	if err != nil {
		return nil, fmt.Errorf("inspect raft state: %w", err)
	}
	if cfg.Bootstrap && !exists {
		conf := raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter, ID: rc.LocalID, Address: n.trans.LocalAddr(),
		}}}
		if err := raft.BootstrapCluster(rc, logs, bolt, snaps, n.trans, conf); err != nil {
			return nil, fmt.Errorf("bootstrap raft: %w", err)
		}
		cfg.Logger.Info("bootstrapped new raft cluster", zap.String("id", cfg.NodeID), zap.String("addr", string(n.trans.LocalAddr())))
	} else if cfg.Bootstrap {
		cfg.Logger.Info("raft state exists, not bootstrapping", zap.String("dir", cfg.DataDir))
	}

	installContactSink()
	n.fsm = &countingFSM{FSM: store.NewFSM(st)}
	r, err := raft.NewRaft(rc, n.fsm, n.watched, bolt, snaps, n.trans)
	if err != nil {
		return nil, fmt.Errorf("start raft: %w", err)
	}
	n.raft = r
	n.logs = logs
	n.observeLeaders()
	n.startIndex = r.LastIndex()
	ok = true
	n.wg.Add(1)
	go n.forward()
	if s, ok := cfg.Stream.(*streamLayer); ok {
		n.wg.Add(1)
		go n.watchLeader(s)
	}
	return n, nil
}

// forward drains raft's NotifyCh into leaderCh, keeping only the latest
// value, and tracks how long the cluster has been without a leader.
func (n *Node) forward() {
	defer n.wg.Done()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case <-poll.C:
			if _, id := n.raft.LeaderWithID(); id != "" {
				n.noLeaderSince.Store(0)
			} else if n.noLeaderSince.Load() == 0 {
				n.noLeaderSince.Store(time.Now().UnixNano())
			}
		case v := <-n.notify:
			if v {
				n.leaderSince.Store(time.Now().UnixNano())
			}
			select { // replace an unread value: only the latest matters
			case <-n.leaderCh:
			default:
			}
			n.leaderCh <- v // cannot block: this goroutine is the only sender
		case <-n.done:
			return
		}
	}
}

// LeaderCh returns the channel that receives true when this manager becomes
// leader and false when it stops being leader. It is the same channel on
// every call, meant for one consumer (the manager's leadership loop). It
// holds only the latest change: a consumer that falls behind reads the
// current state rather than a backlog, and raft never waits for it. Read
// IsLeader first for the state before the first change.
func (n *Node) LeaderCh() <-chan bool { return n.leaderCh }

// IsLeader reports whether this manager is the leader now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the leader's ID and address as this manager knows them;
// empty when there is none.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// CaughtUp reports whether the local store holds every command up to the
// commit index this manager has heard of from a leader; have and want are
// the store's index and that target.
//
// Raft restores a restarted manager's store from its latest snapshot only
// and applies the entries after it once a leader confirms the commit index;
// until then the store is older than what this manager served before it
// stopped, and answering from it would deny that existing objects exist.
// Before any commit index has been heard (it is 0 after a restart) the
// target is the last index the log held at start. It is not kept as a
// target afterwards: that tail may never have been committed, and a
// leader that never writes over it would leave the store waiting forever.
// The first commit index heard already covers every entry of the log that
// the previous leader had confirmed to this manager. A manager that started
// with an empty log (it just joined) and has heard nothing is not caught
// up: want is then 0.
func (n *Node) CaughtUp() (have, want uint64, ok bool) {
	have = n.store.Index()
	want = n.raft.CommitIndex()
	if want == 0 {
		if want = n.startIndex; want == 0 {
			return have, 0, false
		}
	}
	if have >= want {
		return have, want, true
	}
	// The store's index is that of the last command: no-ops, barriers and
	// configuration entries never reach it. The store is caught up if none
	// of the entries after its index is a command.
	for i := have + 1; i <= want; i++ {
		var l raft.Log
		if err := n.logs.GetLog(i, &l); err != nil {
			// Only entries already in a snapshot of the FSM are compacted.
			if errors.Is(err, raft.ErrLogNotFound) && i <= n.raft.AppliedIndex() {
				continue
			}
			return have, want, false
		}
		if l.Type == raft.LogCommand {
			return have, want, false
		}
	}
	return have, want, true
}

// WaitCaughtUp blocks until CaughtUp, or fails with an error wrapping
// ErrCatchingUp when ctx ends first.
func (n *Node) WaitCaughtUp(ctx context.Context) error {
	for {
		have, want, ok := n.CaughtUp()
		if ok {
			return nil
		}
		// The commit index moves without the store; poll it, and wake at
		// once when the store moves.
		wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		_, _ = n.store.WaitIndex(wctx, have)
		cancel()
		if ctx.Err() == nil {
			continue
		}
		if want == 0 {
			return fmt.Errorf("%w: it has not heard from a leader yet", ErrCatchingUp)
		}
		return fmt.Errorf("%w: its store is at index %d of %d", ErrCatchingUp, have, want)
	}
}

// AwaitLeader returns the leader's ID and address, waiting for one to be
// known, as right after this manager started: it learns the leader from
// the leader's first heartbeat. A cluster that has been without a leader
// for NoQuorumWait answers at once with an error wrapping ErrNoQuorum, so
// that read-only mode does not make every request wait.
func (n *Node) AwaitLeader(ctx context.Context) (id, addr string, err error) {
	patience := n.cfg.NoQuorumWait
	if since := n.noLeaderSince.Load(); since != 0 {
		patience -= time.Since(time.Unix(0, since))
	}
	deadline := time.NewTimer(max(patience, 0))
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if id, addr := n.Leader(); id != "" {
			return id, addr, nil
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return "", "", n.noLeader()
		case <-ctx.Done():
			return "", "", fmt.Errorf("wait for raft leader: %w", ctx.Err())
		}
	}
}

// Store returns the state store this node applies to.
func (n *Node) Store() *store.Store { return n.store }

// awaitLeader returns nil when this manager is the leader, a
// *NotLeaderError when another manager is, and ErrNoQuorum when none has
// appeared within NoQuorumWait.
func (n *Node) awaitLeader(ctx context.Context) error {
	patience := n.cfg.NoQuorumWait
	if since := n.noLeaderSince.Load(); since != 0 {
		patience -= time.Since(time.Unix(0, since))
	}
	deadline := time.NewTimer(max(patience, 0))
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		switch n.raft.State() {
		case raft.Leader:
			return nil
		case raft.Shutdown:
			return ErrShutdown
		}
		// A follower keeps its leader until its heartbeat times out; a leader
		// it has not heard from for that long is likely gone, so wait for the
		// election instead of redirecting the caller to a dead address.
		if addr, id := n.raft.LeaderWithID(); id != "" && time.Since(n.raft.LastContact()) < n.cfg.HeartbeatTimeout {
			return &NotLeaderError{LeaderID: string(id), LeaderAddr: string(addr)}
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return n.noLeader()
		case <-ctx.Done():
			return fmt.Errorf("wait for raft leader: %w", ctx.Err())
		}
	}
}

// Apply proposes b and waits until it is committed and applied on this
// manager (the leader), returning its raft index.
//
// Errors: *NotLeaderError on a follower; an error wrapping ErrNoQuorum when
// no leader exists, which also wraps ErrStorage when this manager's own log
// writes are failing; ErrStorage when the leader could not store the entry
// (it then steps down); store.ErrConflict or store.ErrInvalid from the FSM, as
// is (the index is then that of the rejected entry). If leadership is lost
// or ctx ends after the entry was proposed, the entry may still commit
// later: callers that retry should guard the batch with Expect.
func (n *Node) Apply(ctx context.Context, b *store.Batch) (uint64, error) {
	data, err := store.Encode(b)
	if err != nil {
		return 0, err
	}
	if len(data) > MaxEntryBytes {
		return 0, fmt.Errorf("batch encodes to %d bytes, more than %d: %w", len(data), MaxEntryBytes, ErrTooLarge)
	}
	if err := n.awaitLeader(ctx); err != nil {
		return 0, err
	}
	var timeout time.Duration // 0: raft waits for room in its queue
	if d, ok := ctx.Deadline(); ok {
		if timeout = time.Until(d); timeout <= 0 {
			return 0, fmt.Errorf("raft apply: %w", context.DeadlineExceeded)
		}
	}
	f := n.raft.Apply(data, timeout)
	if err := wait(ctx, f); err != nil {
		return 0, n.mapErr(ctx, err)
	}
	if resp, ok := f.Response().(error); ok && resp != nil {
		return f.Index(), resp
	}
	return f.Index(), nil
}

// wait waits for a raft future without outliving ctx.
func wait(ctx context.Context, f raft.Future) error {
	errc := make(chan error, 1)
	go func() { errc <- f.Error() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return fmt.Errorf("raft: %w (the operation may still complete)", ctx.Err())
	}
}

func (n *Node) mapErr(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		// Whoever leads now (or nobody) decides what the caller should do.
		if lerr := n.awaitLeader(ctx); lerr != nil {
			return fmt.Errorf("%w (after %v)", lerr, err)
		}
		return fmt.Errorf("raft: %w", err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrShutdown
	case errors.Is(err, ErrStorage):
		return err // it names the disk already
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("raft: %w: %w", err, context.DeadlineExceeded)
	}
	return fmt.Errorf("raft: %w", err)
}

// Barrier waits until every entry committed before it has been applied to
// this manager's store. A new leader must pass one before acting on its
// store (scheduling, reconciling): entries committed by the previous leader
// may not have reached its FSM yet.
func (n *Node) Barrier(ctx context.Context) error {
	term := n.raft.CurrentTerm()
	if err := wait(ctx, n.raft.Barrier(0)); err != nil {
		return n.mapErr(ctx, err)
	}
	n.readyTerm.Store(term)
	return nil
}

// VerifyLeader confirms with a quorum that this manager is still the
// leader, after making sure (once per term, with Barrier) that its store
// holds everything committed before. A read from Store().View() after it
// returns nil is linearizable.
func (n *Node) VerifyLeader(ctx context.Context) error {
	if n.readyTerm.Load() != n.raft.CurrentTerm() {
		if err := n.Barrier(ctx); err != nil {
			return err
		}
	}
	if err := wait(ctx, n.raft.VerifyLeader()); err != nil {
		return n.mapErr(ctx, err)
	}
	return nil
}

func (n *Node) change(ctx context.Context, f raft.IndexFuture) error {
	if err := wait(ctx, f); err != nil {
		return n.mapErr(ctx, err)
	}
	return nil
}

// AddNonvoter adds a manager that receives the log but does not vote, the
// first step of joining: it catches up before it can affect quorum.
func (n *Node) AddNonvoter(id, addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), configTimeout)
	defer cancel()
	return n.change(ctx, n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, configTimeout))
}

// AddVoter adds a voting manager or promotes a non-voter.
func (n *Node) AddVoter(id, addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), configTimeout)
	defer cancel()
	return n.change(ctx, n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, configTimeout))
}

// RemoveServer removes a manager from the configuration.
func (n *Node) RemoveServer(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), configTimeout)
	defer cancel()
	return n.change(ctx, n.raft.RemoveServer(raft.ServerID(id), 0, configTimeout))
}

// DemoteVoter turns a voter into a non-voter.
func (n *Node) DemoteVoter(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), configTimeout)
	defer cancel()
	return n.change(ctx, n.raft.DemoteVoter(raft.ServerID(id), 0, configTimeout))
}

// Members returns the raft configuration, sorted as raft keeps it.
func (n *Node) Members() ([]Member, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("raft configuration: %w", err)
	}
	_, leader := n.raft.LeaderWithID()
	var out []Member
	for _, s := range f.Configuration().Servers {
		out = append(out, Member{
			ID: string(s.ID), Addr: string(s.Address),
			Voter: s.Suffrage == raft.Voter, Leader: s.ID == leader,
		})
	}
	return out, nil
}

// Stats returns raft figures for metrics.
func (n *Node) Stats() Stats {
	s := Stats{
		State:          n.raft.State().String(),
		Term:           n.raft.CurrentTerm(),
		LastIndex:      n.raft.LastIndex(),
		CommitIndex:    n.raft.CommitIndex(),
		AppliedIndex:   n.raft.AppliedIndex(),
		LastContact:    -1,
		AppliedEntries: n.fsm.entries.Load(),
		AppliedBytes:   n.fsm.bytes.Load(),
	}
	n.leadersMu.Lock()
	s.Elections = n.leaders.changes
	n.leadersMu.Unlock()
	if n.raft.State() == raft.Leader {
		s.LastContact = 0
	} else if lc := n.raft.LastContact(); !lc.IsZero() {
		s.LastContact = time.Since(lc)
	}
	return s
}

// Snapshot asks raft to take a snapshot now (for tests and `warren raft
// snapshot`).
func (n *Node) Snapshot() error {
	if err := n.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("raft snapshot: %w", err)
	}
	return nil
}

// Shutdown stops raft, closes the transport (and with it the stream
// layer's listener) and the log. It is safe to call more than once. The
// data dir can then be reopened by a new Node.
func (n *Node) Shutdown() error {
	n.shutdownOnce.Do(func() {
		var errs []error
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("shut down raft: %w", err))
		}
		if err := n.trans.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close raft transport: %w", err))
		}
		// Closing the transport leaves the connections it dialed open;
		// close them too, so that peers see this member leave as they would
		// see its process end (see failover.go) instead of a silent peer.
		n.trans.CloseStreams()
		if err := n.bolt.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close raft log: %w", err))
		}
		close(n.done)
		n.wg.Wait()
		n.shutdownErr = errors.Join(errs...)
	})
	return n.shutdownErr
}
