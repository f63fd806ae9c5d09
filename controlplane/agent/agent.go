package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/tabledelta"
)

// Executor runs the node's tasks. Set receives the complete desired list
// every time; it is declarative and may be called again with the same list.
// runtime.Worker implements it.
type Executor interface {
	Set(ctx context.Context, tasks []api.Task) error
}

// Network applies the network half of the assignments (service table, mesh
// peers, pod subnet, DNS). Like Executor it takes the whole desired state.
type Network interface {
	SetNetwork(ctx context.Context, a *api.Assignments) error
}

// Manager is the part of the API client the agent uses; *client.Client
// implements it, failing over between the addresses given to SetAddrs.
type Manager interface {
	Register(ctx context.Context, reg api.NodeRegistration) error
	Assignments(ctx context.Context, index uint64, wait time.Duration) (*api.Assignments, error)
	ReportStatus(ctx context.Context, rep api.StatusReport) error
	SetAddrs(addrs []string)
}

var _ Manager = (*client.Client)(nil)

// Config wires an Agent.
type Config struct {
	NodeID  string
	DataDir string
	Manager Manager
	// Managers seeds the manager list (from the join answer); the agent then
	// keeps the list it learns from its assignments, across restarts.
	Managers []string
	Executor Executor
	Network  Network
	// Registration describes the node; it is called for every heartbeat so
	// capacity and keys may change.
	Registration func() api.NodeRegistration
	Logger       *zap.Logger
	// Secrets holds the files of secrets and configs (tmpfs); nil on a node
	// that cannot run tasks mounting them.
	Secrets SecretFS

	// Heartbeat is the registration interval (default 2s: unchanged heartbeats
	// stay in the leader's memory, so they are cheap, and a down grace as short
	// as 5s still tolerates a late one).
	Heartbeat time.Duration
	// Wait is the blocking query's wait (default 30s).
	Wait time.Duration
	// RetryMin and RetryMax bound the backoff after a failure (1s, 30s).
	RetryMin, RetryMax time.Duration
	// Now is the clock (time.Now): how long the node has been cut off
	// decides the disconnect stop-after (disconnect.go) and the node's own
	// service table (local.go).
	Now func() time.Time

	// Peers reports how the other nodes answer the node's probes over the
	// mesh (nil: not known, no backend is judged by its node).
	Peers func() map[string]PeerHealth
	// While cut off (no manager answered for CutAfter, default the
	// disconnect policy's cut: 3 heartbeats, at least 5s) the node adjusts
	// its own table (local.go): backends of a peer silent for PeerDown
	// (default 2s) leave it. Handover (default 10s) bounds how long, once
	// a manager answers again, the node waits for the managers' table to be
	// fresh and its peers to answer before that table wins anyway.
	// LocalTick (default 500ms) is how often the node re-decides.
	CutAfter, PeerDown, Handover, LocalTick time.Duration
}

// Agent is the manager-facing half of a node agent. Create it with New,
// start it with Run; Report may be called at any time after New.
type Agent struct {
	cfg   Config
	log   *zap.Logger
	cache *cache

	mu       sync.Mutex
	pending  map[string]api.TaskStatus // unacknowledged reports, latest per task
	known    map[string]api.TaskStatus // the latest report per task, delivered or not
	applied  *api.Assignments          // last assignments handed to Executor and Network
	table    uint64                    // index of the service table in effect (TableIndex)
	current  *api.Assignments          // last assignments received or cached
	managers []string
	// cacheKey opens the secret values in the assignments. It only ever
	// lives in memory: a node that reboots without reaching a manager
	// cannot read the secrets in its own cache.
	cacheKey []byte
	// pull is each running task's registry settings and credentials
	// (registry.go), in memory only, like cacheKey.
	pull map[string]*api.PullAuth

	link link // contact with the managers (disconnect.go)

	latest   chan *api.Assignments // size 1: the applier only wants the newest
	reportCh chan struct{}         // size 1: something to send
	reachCh  chan struct{}         // size 1: a manager answered
	tableCh  chan struct{}         // size 1: the table index moved; heartbeat now
	watchCh  chan struct{}         // size 1: a heartbeat got through; the watch retries now

	// windowMu guards the canary-analysis counting windows (traffic.go),
	// touched only by the heartbeat loop.
	windowMu    sync.Mutex
	windows     map[string]*trafficWindow
	lastTraffic []api.BackendTraffic

	// The node's own table while cut off (local.go, autonomy.go,
	// cutoff.go): the runtime's reports, who decides the table, and what
	// was last offered to the applier, to offer only changes.
	local   map[string]api.TaskStatus
	auto    autonomy
	offered *api.Assignments
	// pubMu orders publishes (cutoff.go) without holding mu while one
	// computes the node's own table: heartbeats take mu.
	pubMu sync.Mutex
	// kick ends the watch's query or backoff when a manager answers after
	// a cut, so the managers' table is fetched at once.
	kick chan struct{}

	// tbl is the watch loop's copy of the table with its hashes, to apply
	// and check deltas (delta.go).
	tbl heldTable
}

// New opens the cache in cfg.DataDir and loads what it holds.
func New(cfg Config) (*Agent, error) {
	switch {
	case cfg.NodeID == "" || cfg.DataDir == "":
		return nil, errors.New("agent: NodeID and DataDir are required")
	case cfg.Manager == nil || cfg.Executor == nil || cfg.Network == nil || cfg.Registration == nil:
		return nil, errors.New("agent: Manager, Executor, Network and Registration are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 2 * time.Second
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 30 * time.Second
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = time.Second
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(30*time.Second, cfg.RetryMin)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CutAfter <= 0 {
		cfg.CutAfter = max(cutAfter*cfg.Heartbeat, floor)
	}
	if cfg.PeerDown <= 0 {
		cfg.PeerDown = 2 * time.Second
	}
	if cfg.Handover <= 0 {
		cfg.Handover = 10 * time.Second
	}
	if cfg.LocalTick <= 0 {
		cfg.LocalTick = 500 * time.Millisecond
	}
	c, err := openCache(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	a := &Agent{
		cfg: cfg, log: cfg.Logger.Named("agent"), cache: c, known: map[string]api.TaskStatus{},
		latest:   make(chan *api.Assignments, 1),
		reportCh: make(chan struct{}, 1),
		reachCh:  make(chan struct{}, 1),
		tableCh:  make(chan struct{}, 1),
		watchCh:  make(chan struct{}, 1),
		kick:     make(chan struct{}, 1),
		local:    map[string]api.TaskStatus{},
		auto:     autonomy{cutAfter: cfg.CutAfter, handover: cfg.Handover},
	}
	if a.current, err = c.cachedAssignments(); err != nil {
		c.close()
		return nil, err
	}
	if a.pending, err = c.reports(); err != nil {
		c.close()
		return nil, err
	}
	cached, err := c.managers()
	if err != nil {
		c.close()
		return nil, err
	}
	// A node rebooted while cut off counts its cut from the last answer it
	// had before, not from the reboot.
	if _, err := c.get(keyHeard, &a.link.heard); err != nil {
		c.close()
		return nil, err
	}
	a.link.saved = a.link.heard
	// Addresses learned from the cluster win over the join-time seed; both
	// are kept so a node that never reached its last managers can still try
	// the ones it joined through.
	a.managers = mergeAddrs(cached, cfg.Managers)
	if len(a.managers) > 0 {
		// Each part in this node's order of preference (spread.go); the
		// learned ones still first.
		cfg.Manager.SetAddrs(mergeAddrs(preferred(cfg.NodeID, cached), preferred(cfg.NodeID, cfg.Managers)))
		if err := c.put(keyManagers, a.managers); err != nil {
			c.close()
			return nil, err
		}
	}
	return a, nil
}

func mergeAddrs(first, then []string) []string {
	out := slices.Clone(first)
	for _, a := range then {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// Close releases the cache. Call it after Run returned.
func (a *Agent) Close() error { return a.cache.close() }

// Report records a task's status for the managers. Reports are coalesced per
// task (the latest wins), persisted, and sent when a manager is reachable.
// It never blocks on the network.
func (a *Agent) Report(taskID string, st api.TaskStatus) {
	a.mu.Lock()
	a.pending[taskID] = st
	a.known[taskID] = st
	a.local[taskID] = st
	cut := a.auto.local()
	err := a.cache.putReport(taskID, st)
	a.mu.Unlock()
	if cut {
		// A task restarted while cut off is in the table at its new
		// address now, not when the managers are back.
		a.publish()
	}
	if err != nil {
		// Still held in memory and sent; only a reboot before delivery loses it.
		a.log.Warn("persist status report", zap.String("task_id", taskID), zap.Error(err))
	}
	signal(a.reportCh)
}

// Assignments returns the last assignments received (or loaded from the
// cache), or nil.
func (a *Agent) Assignments() *api.Assignments {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.current
}

// Applied returns the last assignments successfully handed to the Executor
// and Network, or nil.
func (a *Agent) Applied() *api.Assignments {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.applied
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// offer replaces whatever the applier has not picked up yet.
func (a *Agent) offer(as *api.Assignments) {
	for {
		select {
		case a.latest <- as:
			return
		default:
		}
		select {
		case <-a.latest:
		default:
		}
	}
}

// Run applies the cached assignments at once, then registers, watches and
// reports until ctx ends. Failures of managers are retried forever; Run
// only returns when ctx is done.
func (a *Agent) Run(ctx context.Context) error {
	a.mu.Lock()
	cached := a.current
	// A node that starts without reaching any manager decides its table
	// alone from CutAfter after its start.
	a.auto.lastOK = a.cfg.Now()
	a.mu.Unlock()
	if cached != nil {
		a.log.Info("applying cached assignments", zap.Uint64("index", cached.Index), zap.Int("tasks", len(cached.Tasks)))
		a.publish()
	}
	var wg sync.WaitGroup
	for _, loop := range []func(context.Context){a.applyLoop, a.heartbeatLoop, a.watchLoop, a.reportLoop, a.disconnectLoop, a.localLoop} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loop(ctx)
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// backoff doubles from RetryMin to RetryMax.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

func (a *Agent) newBackoff() *backoff { return &backoff{min: a.cfg.RetryMin, max: a.cfg.RetryMax} }

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// applyLoop hands assignments to the node. A failed apply is retried with
// backoff unless newer assignments arrive first.
func (a *Agent) applyLoop(ctx context.Context) {
	bo := a.newBackoff()
	var want *api.Assignments
	for {
		if want == nil {
			select {
			case <-ctx.Done():
				return
			case want = <-a.latest:
			}
		}
		err := a.apply(ctx, want)
		if err == nil {
			bo.reset()
			a.mu.Lock()
			a.applied = want
			a.mu.Unlock()
			want = nil
			continue
		}
		if ctx.Err() != nil {
			return
		}
		d := bo.next()
		a.log.Warn("apply assignments failed; retrying", zap.Uint64("index", want.Index), zap.Duration("in", d), zap.Error(err))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case newer := <-a.latest:
			want = newer
		case <-t.C:
		}
		t.Stop()
	}
}

// TableReporter is implemented by a Network that can tell which
// assignments' service table is in effect even when another part of
// SetNetwork (the mesh, say) failed.
type TableReporter interface {
	TableIndex() uint64
}

func (a *Agent) apply(ctx context.Context, as *api.Assignments) error {
	// Network first: a task started before its service table and routes
	// exist could not reach anything.
	err := a.cfg.Network.SetNetwork(ctx, as)
	// The managers hold task stops until every node's table is without the
	// task, so say at once what is in effect, before the executor's turn.
	table := uint64(0)
	if tr, ok := a.cfg.Network.(TableReporter); ok {
		table = tr.TableIndex()
	} else if err == nil {
		table = as.Index
	}
	a.setTable(table)
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	tasks, err := a.withSecrets(as)
	if err != nil {
		return err
	}
	tasks = a.stopAfterCut(as, tasks)
	a.setPull(as)
	if err := a.cfg.Executor.Set(ctx, tasks); err != nil {
		return fmt.Errorf("executor: %w", err)
	}
	return nil
}

// setTable records the service-table index in effect and, when it moved,
// has the heartbeat carry it to the leader now rather than on its next tick.
func (a *Agent) setTable(index uint64) {
	a.mu.Lock()
	moved := index != a.table && index != 0
	if moved {
		a.table = index
	}
	a.mu.Unlock()
	if moved {
		signal(a.tableCh)
	}
}

// TableIndex is the index of the assignments whose service table is in
// effect on this node, 0 before the first.
func (a *Agent) TableIndex() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.table
}

// heartbeatLoop registers at once, then every Heartbeat and whenever the
// service table in effect changed. Heartbeats do not wait for each other
// (up to maxBeats in flight, streams of the client's one connection, which
// the client health-checks and replaces when it goes silent): on a lossy
// link one request stalled in TCP retransmission must not silence the node
// for longer than the managers' down grace, which a strict sequence of
// beats would (that is how a node flaps between ready and down).
func (a *Agent) heartbeatLoop(ctx context.Context) {
	slots := make(chan struct{}, maxBeats)
	// freed: a beat ended. owed: a table move found every slot taken; its
	// beat goes out as soon as one frees rather than on the next tick, for
	// drains on the managers wait for it.
	freed := make(chan struct{}, 1)
	owed, moved := false, false
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case slots <- struct{}{}:
			owed = false
			reg := a.cfg.Registration()
			reg.NodeID = a.cfg.NodeID
			reg.TableIndex = a.TableIndex()
			reg.Traffic = a.traffic()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots; signal(freed) }()
				bctx, cancel := context.WithTimeout(ctx, max(beatTimeout*a.cfg.Heartbeat, floor))
				err := a.cfg.Manager.Register(bctx, reg)
				cancel()
				if err != nil {
					if ctx.Err() == nil {
						a.log.Warn("heartbeat failed", zap.Error(err))
					}
					return
				}
				a.heard()
				a.answered()
				signal(a.reachCh)
				signal(a.watchCh)
			}()
		default:
			// Every slot holds a beat that has not answered yet: the
			// managers are out of reach, and piling on more would not help.
			owed = owed || moved
		}
		var slotFreed <-chan struct{}
		if owed {
			slotFreed = freed
		}
		moved = false
		t := time.NewTimer(a.cfg.Heartbeat)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-a.tableCh:
			t.Stop()
			moved = true
		case <-slotFreed:
			t.Stop()
			moved = true
		}
	}
}

const (
	// maxBeats bounds the heartbeats in flight. A new one starts only every
	// Heartbeat, so busy managers never get more than the nominal rate (a
	// sequence of beats would slow down with them instead). Two were not
	// enough on a 25 %-loss link (3 flaps in 30 s of TestEdgeAutonomy, 0
	// with four): both slots end up stalled in retransmits at once.
	maxBeats = 4
	// beatTimeout, in heartbeats (at least floor, as a TLS handshake
	// whose SYN was lost takes over a second), is how long one heartbeat
	// may take before its slot is given to a new one.
	beatTimeout = 4
)

// watchLoop follows the node's assignments with blocking queries.
//
// Its first query asks from index 0, for a full answer at once: the cached
// assignments may be current, but the cache key that opens their secrets
// only ever comes in an answer, and a query at the current index that runs
// out answers with the index alone.
//
// It names the table it holds, so a manager that still knows it answers
// with only what changed (delta.go); a delta that does not check out makes
// it ask again for the full table.
func (a *Agent) watchLoop(ctx context.Context) {
	bo := a.newBackoff()
	fresh := true
	full := false // the next query asks for the full table
	for {
		var index uint64
		a.mu.Lock()
		cur := a.current
		if a.current != nil && !fresh {
			index = a.current.Index
		}
		a.mu.Unlock()
		// Bounded beyond the server's wait so a manager that went silent
		// (partition, no RST) is given up on and the next one tried.
		qctx, cancel := context.WithTimeout(ctx, a.cfg.Wait+15*time.Second)
		kicked := a.cancelOnKick(qctx, cancel)
		as, err := a.query(qctx, index, cur, full)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if kicked() {
				bo.reset()
				continue // a manager answers again after a cut: ask it now
			}
			if client.StatusOf(err) == http.StatusNotFound {
				a.log.Error("this node is no longer part of the cluster; keeping the cached assignments", zap.Error(err))
			} else {
				a.log.Warn("watch assignments failed", zap.Error(err))
			}
			// A heartbeat that got through ends the backoff: after a cut
			// the managers' state is wanted at once.
			t := time.NewTimer(bo.next())
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			case <-a.watchCh:
				t.Stop()
			case <-a.kick:
				t.Stop()
			}
			continue
		}
		bo.reset()
		a.heard()
		a.answered()
		signal(a.reachCh)
		fresh, full = false, false
		var delta *api.TableDelta
		var held *tabledelta.Held
		if as.Delta != nil && as.Index != index {
			delta = as.Delta
			if as, held, err = a.expand(cur, as); err != nil {
				a.log.Warn("table delta does not apply; asking for the full table", zap.Error(err))
				full = true
				continue
			}
		}
		if as.Index == index {
			a.mu.Lock()
			cur := a.current
			a.mu.Unlock()
			if cur != nil {
				a.received(nil, cur)
			}
			a.gotAssignments()
			continue // the wait ran out with nothing new
		}
		a.mu.Lock()
		prev := a.current
		a.mu.Unlock()
		if err := a.acceptDelta(as, delta); err != nil {
			a.log.Warn("cache assignments", zap.Error(err))
		}
		if held != nil {
			a.mu.Lock()
			a.hold(a.current, held)
			a.mu.Unlock()
		}
		a.received(prev, as)
		a.gotAssignments()
		a.publish()
	}
}

// accept makes as current and persists it with the manager list it names.
func (a *Agent) accept(as *api.Assignments) error { return a.acceptDelta(as, nil) }

// acceptDelta is accept for assignments whose table d made of the current
// one (nil: a full answer), which the cache writes alone.
func (a *Agent) acceptDelta(as *api.Assignments, d *api.TableDelta) error {
	a.mu.Lock()
	if len(as.CacheKey) > 0 {
		a.cacheKey = as.CacheKey
	}
	stripped := *as
	stripped.CacheKey = nil
	as = &stripped
	a.current = as
	if !a.auto.local() {
		// Forget the reports of tasks no longer here; while cut off they
		// are kept, for a task held on rejoin is in no table of the managers.
		a.pruneLocal(as.Tasks)
	}
	changed := len(as.Managers) > 0 && !slices.Equal(as.Managers, a.managers)
	if changed {
		a.managers = slices.Clone(as.Managers)
	}
	a.mu.Unlock()
	if changed {
		a.cfg.Manager.SetAddrs(preferred(a.cfg.NodeID, as.Managers))
		if err := a.cache.put(keyManagers, as.Managers); err != nil {
			return err
		}
	}
	return a.cache.putAssignments(as, d)
}

// reportLoop sends pending reports whenever there are some, retrying with
// backoff and as soon as any manager answered again.
func (a *Agent) reportLoop(ctx context.Context) {
	bo := a.newBackoff()
	for {
		a.mu.Lock()
		batch := make(map[string]api.TaskStatus, len(a.pending))
		for k, v := range a.pending {
			batch[k] = v
		}
		a.mu.Unlock()
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-a.reportCh:
				continue
			}
		}
		err := a.cfg.Manager.ReportStatus(ctx, api.StatusReport{NodeID: a.cfg.NodeID, Tasks: batch})
		if err == nil {
			bo.reset()
			a.ack(batch)
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if s := client.StatusOf(err); s >= 400 && s < 500 && s != http.StatusConflict && s != http.StatusTooManyRequests {
			// The manager understood and refused (node removed, malformed):
			// resending the same report cannot succeed. Drop it.
			a.log.Error("status report refused; dropping it", zap.Int("tasks", len(batch)), zap.Error(err))
			a.ack(batch)
			continue
		}
		d := bo.next()
		a.log.Warn("status report failed; retrying", zap.Duration("in", d), zap.Error(err))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-a.reachCh:
		}
		t.Stop()
	}
}

// ack forgets delivered reports unless a newer one for the task came in.
func (a *Agent) ack(sent map[string]api.TaskStatus) {
	a.mu.Lock()
	for id, st := range sent {
		if cur, ok := a.pending[id]; ok && sameStatus(cur, st) {
			delete(a.pending, id)
		}
	}
	err := a.cache.ackReports(sent)
	a.mu.Unlock()
	if err != nil {
		a.log.Warn("forget delivered reports", zap.Error(err))
	}
}
