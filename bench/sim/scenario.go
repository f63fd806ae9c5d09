//go:build linux

package sim

import (
	"context"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
)

// Profile sizes one run.
type Profile struct {
	Name  string
	Nodes int
	// Tasks are the replicated tasks created in batches of ServiceSize
	// (one service per batch); RollingTasks of them belong to the service
	// that is rolled, WeightTasks to the canary whose weight changes.
	Tasks, ServiceSize, RollingTasks, WeightTasks int
	// RollingSteps is how many batches the rolling update takes
	// (parallelism RollingTasks / RollingSteps).
	RollingSteps int
	// JoinConcurrency is how many nodes join at once.
	JoinConcurrency int
	// Kills is how many times the leader is killed (SIGKILL) and restarted.
	Kills int
	// Disconnect is the fraction of nodes cut off at once and brought back.
	Disconnect float64
	Node       NodeOptions
	// RaftTimeout is the managers' --raft-timeout (0: their default, 500ms).
	RaftTimeout time.Duration
	// NodeDownGrace is the managers' --node-down-grace (0: 30s).
	NodeDownGrace time.Duration
	// Deadline bounds every wait of the run.
	Deadline time.Duration
}

// Goals of issue 19 (2,000 nodes).
const (
	goalAPIP95      = 50 * time.Millisecond
	goalTasksPerSec = 5000
	goalLeaderRSS   = 300 << 20
	goalFailoverP99 = 2 * time.Second
	goalWeightP99   = time.Second
)

// Run brings up three managers under dir, runs every scenario of p and
// returns the figures. bin is the warren binary.
func Run(ctx context.Context, bin, dir string, p Profile, logw io.Writer) (*Table, error) {
	rt := "default"
	if p.RaftTimeout > 0 {
		rt = p.RaftTimeout.String()
	}
	r := &run{p: p, logw: logw, watch: &Watch{}, ledger: &Ledger{}, tb: &Table{Title: fmt.Sprintf("warren sim — profile %s: %d nodes, %d replicated tasks, 3 managers, raft timeout %s", p.Name, p.Nodes, p.Tasks, rt)}}
	ctx, cancel := context.WithTimeout(ctx, p.Deadline)
	defer cancel()
	c, err := StartCluster(ctx, bin, dir, 3, "10.32.0.0/11", p.RaftTimeout, p.NodeDownGrace)
	if err != nil {
		return nil, err
	}
	r.c = c
	defer c.Stop()
	defer func() {
		for _, f := range r.cleanup {
			f()
		}
	}()
	defer r.closeNodes()
	stopSampler := r.sampleLeader()
	defer stopSampler()
	for _, step := range []struct {
		name string
		f    func(context.Context) error
	}{
		{"join", r.join},
		{"idle traffic", r.idleTraffic},
		{"replicated tasks", r.replicated},
		{"global service", r.global},
		{"weight change", r.weightChange},
		{"rolling update", r.rolling},
		{"crash wave", r.crashWave},
		{"disconnect wave", r.disconnectWave},
		{"leader failover", r.failover},
	} {
		r.logf("── %s", step.name)
		if err := step.f(ctx); err != nil {
			r.summary()
			return r.tb, fmt.Errorf("%s: %w", step.name, err)
		}
	}
	r.summary()
	return r.tb, nil
}

type run struct {
	p      Profile
	c      *Cluster
	logw   io.Writer
	tb     *Table
	watch  *Watch
	ledger *Ledger
	nodes  []*Node

	api       map[string]*Latencies // service ls / inspect / create while busy
	maxRSS    atomic.Int64
	retries   atomic.Int64 // calls retried on 503
	cleanup   []func()
	probes    atomic.Int64       // names of the services the prober creates
	apiBase   map[string]float64 // the leader's metrics when the prober started
	apiLeader int                // and which manager that was
	replTotal int                // replicated tasks desired
}

func (r *run) logf(format string, args ...any) {
	if r.logw != nil {
		fmt.Fprintf(r.logw, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
	}
}

func (r *run) closeNodes() {
	var wg sync.WaitGroup
	for _, n := range r.nodes {
		if n == nil {
			continue // its join failed
		}
		wg.Add(1)
		go func() { defer wg.Done(); n.Close() }()
	}
	wg.Wait()
}

// sampleLeader follows the leader's RSS (the peak) every 250ms.
func (r *run) sampleLeader() func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			if i, err := r.c.Leader(); err == nil {
				if ps, err := readProc(r.c.Managers[i].PID()); err == nil && ps.RSS > r.maxRSS.Load() {
					r.maxRSS.Store(ps.RSS)
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// leaderStat reads the current leader's metrics and process figures,
// trying for up to 15s: on a loaded machine a scrape (which walks every
// task) may time out, and an election may be under way.
func (r *run) leaderStat() (map[string]float64, procStat, error) {
	var err error
	for range 30 {
		var s map[string]float64
		var ps procStat
		if s, ps, err = r.leaderStatOnce(); err == nil {
			return s, ps, nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return nil, procStat{}, err
}

func (r *run) leaderStatOnce() (map[string]float64, procStat, error) {
	i, err := r.c.Leader()
	if err != nil {
		return nil, procStat{}, err
	}
	m := r.c.Managers[i]
	s, err := r.c.Scrape(m)
	if err != nil {
		return nil, procStat{}, err
	}
	ps, err := readProc(m.PID())
	return s, ps, err
}

// until polls cond every 100ms until it holds or ctx ends. (Each poll
// scrapes the leader's /metrics, which walks every task: the bench's own
// load on the leader, visible in its CPU profile as Registry.Gather.)
func until(ctx context.Context, what string, cond func() (bool, error)) error {
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("waiting for %s: %w (last error: %v)", what, ctx.Err(), last)
			}
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (r *run) join(ctx context.Context) error {
	nodesDir := filepath.Join(filepath.Dir(r.c.Managers[0].Dir), "nodes")
	// Each simulated node's bbolt cache syncs on every report, as a real
	// node's does on its own disk; hundreds of them on the managers' one
	// disk would measure that disk (and starve raft's fsync into
	// elections). Memory stands in for their disks; the managers stay on disk.
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() && os.Getenv("WARREN_SIM_NODES_ON_DISK") == "" {
		d, err := os.MkdirTemp("/dev/shm", "warren-sim-nodes-")
		if err != nil {
			return err
		}
		nodesDir = d
		r.cleanup = append(r.cleanup, func() { _ = os.RemoveAll(d) })
	}
	r.nodes = make([]*Node, r.p.Nodes)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, r.p.JoinConcurrency)
	start := time.Now()
	for range r.p.JoinConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= r.p.Nodes {
					return
				}
				name := fmt.Sprintf("sim-%05d", i)
				dir := filepath.Join(nodesDir, name)
				if err := os.MkdirAll(dir, 0o700); err != nil {
					errs <- err
					return
				}
				// Joins are spread over the managers, as sites join
				// through the one they were given.
				m := r.c.Managers[i%len(r.c.Managers)]
				// A join forwarded to a leader being replaced is refused
				// with 503, as any write is: joined again, as a site would.
				var n *Node
				err := r.retry(ctx, func() (err error) {
					n, err = Join(ctx, dir, name, m.API, r.c.WorkerToken, r.p.Node, r.watch, r.ledger)
					return err
				})
				if err != nil {
					errs <- err
					return
				}
				n.Start(ctx)
				r.nodes[i] = n
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	joined := time.Since(start)
	err := until(ctx, "every node ready", func() (bool, error) {
		s, _, err := r.leaderStat()
		if err != nil {
			return false, err
		}
		return s[`warren_cluster_nodes{availability="active",state="ready"}`] >= float64(r.p.Nodes), nil
	})
	if err != nil {
		return err
	}
	ready := time.Since(start)
	r.tb.Add("join rate (CSR signed, node recorded)", "%.0f nodes/s (%d in %.1f s, %d at once)", float64(r.p.Nodes)/joined.Seconds(), r.p.Nodes, joined.Seconds(), r.p.JoinConcurrency)
	r.tb.Add("every node ready (first join → last ready)", "%.1f s", ready.Seconds())
	r.logf("joined %d in %v, all ready after %v", r.p.Nodes, joined, ready)
	return nil
}

// idleTraffic measures what heartbeats and the watch cost per node while
// nothing changes.
func (r *run) idleTraffic(ctx context.Context) error {
	window := 6 * time.Second
	hb0, hbB0, other0 := r.traffic()
	s0, p0, err := r.leaderStat()
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(window):
	}
	hb1, hbB1, other1 := r.traffic()
	s1, p1, err := r.leaderStat()
	if err != nil {
		return err
	}
	n := float64(r.p.Nodes)
	sec := window.Seconds()
	perBeat := 0.0
	if hb1 > hb0 {
		perBeat = float64(hbB1-hbB0) / float64(hb1-hb0)
	}
	r.tb.Add("heartbeat traffic per node (idle)", "%.0f B/s (%.0f B per heartbeat, %.2f heartbeats/s)", float64(hbB1-hbB0)/n/sec, perBeat, float64(hb1-hb0)/n/sec)
	r.tb.Add("watch + status traffic per node (idle)", "%.0f B/s", float64(other1-other0)/n/sec)
	r.tb.Add("raft entries/s (idle, heartbeats only)", "%.1f", (s1["warren_raft_commit_index"]-s0["warren_raft_commit_index"])/sec)
	r.tb.Add("leader CPU (idle)", "%.2f cores", (p1.CPU-p0.CPU).Seconds()/sec)
	return nil
}

func (r *run) traffic() (beats, hbBytes, other int64) {
	for _, n := range r.nodes {
		b, by := n.Heartbeats()
		beats += b
		hbBytes += by
		other += n.OtherBytes()
	}
	return
}

func spec(name string, replicas int, version string) api.ServiceSpec {
	return api.ServiceSpec{
		Name: name, Mode: api.ModeReplicated, Replicas: uint64(replicas), Version: version,
		Task: api.TaskSpec{Container: api.ContainerSpec{Image: "warren/demo:" + version}},
	}
}

// prober times service ls / inspect / create while the cluster is busy,
// from a process of its own (prober.go), until the function it returns is
// called.
func (r *run) prober(ctx context.Context) func() {
	if r.api == nil {
		r.api = map[string]*Latencies{}
		for _, op := range proberOps {
			r.api[op] = &Latencies{}
		}
	}
	phase := r.probes.Add(1)
	if phase == 1 {
		// The leader's request histogram before the first probe, for the
		// same calls timed at the server (global).
		r.apiBase, _, _ = r.leaderStat()
		r.apiLeader, _ = r.c.Leader()
		// The service inspect reads, created before the first probe.
		if err := r.retry(ctx, func() error { _, err := r.c.Admin.CreateService(ctx, spec("probe-0", 0, "v1")); return err }); err != nil {
			r.logf("create probe-0: %v", err)
		}
	}
	stop, err := startProber(r.c, "probe-0", fmt.Sprintf("probe-%d-", phase), r.api)
	if err != nil {
		r.logf("start prober: %v", err)
		return func() {}
	}
	return func() {
		if err := stop(); err != nil {
			r.logf("%v", err)
		}
	}
}

// acked waits until the ledger has n tasks acknowledged running, then
// checks that the leader counts at least total running tasks (the ledger's
// and any from before), so that the nodes' side and the leader's agree.
func (r *run) acked(ctx context.Context, what string, n, total int) (LedgerFigures, error) {
	f, err := r.ledger.Wait(ctx, n)
	if err != nil {
		return f, fmt.Errorf("%s: %w", what, err)
	}
	return f, r.runningAtLeast(ctx, what+" (at the leader)", total)
}

func (r *run) runningAtLeast(ctx context.Context, what string, n int) error {
	return until(ctx, what, func() (bool, error) {
		s, _, err := r.leaderStat()
		if err != nil {
			return false, err
		}
		return s[`warren_cluster_tasks{state="running"}`] >= float64(n), nil
	})
}

func (r *run) replicated(ctx context.Context) error {
	stop := r.prober(ctx)
	defer stop()
	type batch struct {
		name     string
		replicas int
		spec     api.ServiceSpec
	}
	var batches []batch
	roll := spec("roll", r.p.RollingTasks, "v1")
	roll.Update.Parallelism = uint64(max(1, r.p.RollingTasks/r.p.RollingSteps))
	batches = append(batches, batch{"roll", r.p.RollingTasks, roll})
	w := spec("weights", r.p.WeightTasks, "v1")
	w.Update.Strategy, w.Update.CanaryWeight = api.StrategyCanary, 10
	batches = append(batches, batch{"weights", r.p.WeightTasks, w})
	left := r.p.Tasks - r.p.RollingTasks - r.p.WeightTasks
	for i := 0; left > 0; i++ {
		k := min(left, r.p.ServiceSize)
		batches = append(batches, batch{fmt.Sprintf("svc-%04d", i), k, spec(fmt.Sprintf("svc-%04d", i), k, "v1")})
		left -= k
	}
	r.replTotal = r.p.Tasks
	if dir := os.Getenv("WARREN_SIM_PPROF"); dir != "" {
		if i, err := r.c.Leader(); err == nil {
			m := r.c.Managers[i]
			go func() {
				path := filepath.Join(dir, r.p.Name+"-leader-cpu.pprof")
				if err := r.c.Profile(m, "profile?seconds=15", path); err != nil {
					r.logf("cpu profile: %v", err)
				}
				if err := r.c.Profile(m, "heap", filepath.Join(dir, r.p.Name+"-leader-heap.pprof")); err != nil {
					r.logf("heap profile: %v", err)
				}
			}()
		}
	}
	s0, p0, err := r.leaderStat()
	if err != nil {
		return err
	}
	_, _, other0 := r.traffic()
	w0 := r.watchMark()
	r.ledger.Arm(func(t *api.Task) bool { return !strings.HasPrefix(t.ServiceName, "probe-") })
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(batches) {
					return
				}
				if err := r.retry(ctx, func() error { _, err := r.c.Admin.CreateService(ctx, batches[i].spec); return err }); err != nil {
					errc <- fmt.Errorf("create %s: %w", batches[i].name, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	created := time.Since(start)
	f, err := r.acked(ctx, fmt.Sprintf("%d tasks running", r.p.Tasks), r.p.Tasks, r.p.Tasks)
	if err != nil {
		return err
	}
	el := f.Acked
	s1, p1, err := r.leaderStat()
	if err != nil {
		return err
	}
	rate := float64(r.p.Tasks) / el.Seconds()
	r.tb.Add("create calls (services of ≤ "+fmt.Sprint(r.p.ServiceSize)+" replicas)", "%d in %.1f s", len(batches), created.Seconds())
	r.tb.Add(fmt.Sprintf("%d tasks started on their nodes (scheduled, committed, delivered)", r.p.Tasks), "%.2f s after the first create", f.Delivered.Seconds())
	r.tb.Add("a task's start on its node → its running report sent p50 / p99", "%s / %s", ms(Quantile(f.Queued, 0.5)), ms(Quantile(f.Queued, 0.99)))
	r.tb.Add("a task's running report sent → acked p50 / p99", "%s / %s", ms(Quantile(f.Sent, 0.5)), ms(Quantile(f.Sent, 0.99)))
	r.tb.Goal(fmt.Sprintf("%d tasks running (scheduled, started, acked)", r.p.Tasks), fmt.Sprintf("≥ %d tasks/s", goalTasksPerSec), rate >= goalTasksPerSec, "%.2f s = %.0f tasks/s", el.Seconds(), rate)
	r.raftFigures("while placing", s0, s1, p0, p1, el)
	_, _, other1 := r.traffic()
	r.watchFigures("while placing", w0, r.watchMark())
	r.tb.Add("assignments + status traffic per node while placing", "%.0f KiB/s (%.1f MiB per node in all)", float64(other1-other0)/float64(r.p.Nodes)/el.Seconds()/1024, float64(other1-other0)/float64(r.p.Nodes)/(1<<20))
	return nil
}

// retry calls f until it succeeds, for as long as it fails with 503 (no
// leader, leadership lost mid-request): what an operator's script does on
// a cluster that is electing. Retries are counted for the table.
func (r *run) retry(ctx context.Context, f func() error) error {
	for {
		err := f()
		if client.StatusOf(err) != http.StatusServiceUnavailable {
			return err
		}
		r.retries.Add(1)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (r *run) raftFigures(phase string, s0, s1 map[string]float64, p0, p1 procStat, el time.Duration) {
	sec := el.Seconds()
	r.tb.Add("raft entries/s "+phase, "%.0f", (s1["warren_raft_commit_index"]-s0["warren_raft_commit_index"])/sec)
	if b1, ok := s1["warren_raft_applied_bytes_total"]; ok {
		r.tb.Add("raft bytes/s "+phase, "%.0f KiB/s", (b1-s0["warren_raft_applied_bytes_total"])/sec/1024)
	}
	if p1.CPU >= p0.CPU {
		r.tb.Add("leader CPU "+phase, "%.2f cores", (p1.CPU-p0.CPU).Seconds()/sec)
	}
	// The same leader at both ends (no failover in between), and a
	// manager that counts its plans.
	if n1, ok := s1["warren_leader_plans_total"]; ok && n1 >= s0["warren_leader_plans_total"] {
		plans := n1 - s0["warren_leader_plans_total"]
		folded := s1["warren_leader_plan_coalesced_writes_total"] - s0["warren_leader_plan_coalesced_writes_total"]
		conflicts := "conflicts not counted"
		if c1, ok := s1["warren_leader_plan_conflicts_total"]; ok {
			conflicts = fmt.Sprintf("%.0f refused as conflicts", c1-s0["warren_leader_plan_conflicts_total"])
		}
		r.tb.Add("leader plans/s "+phase, "%.0f (%.1f writes and acks folded into each; %s)", plans/sec, folded/max(plans, 1), conflicts)
	}
}

func (r *run) global(ctx context.Context) error {
	stop := r.prober(ctx)
	defer stop()
	r.ledger.Arm(func(t *api.Task) bool { return t.ServiceName == "everywhere" })
	s := spec("everywhere", 0, "v1")
	s.Mode = api.ModeGlobal
	if err := r.retry(ctx, func() error { _, err := r.c.Admin.CreateService(ctx, s); return err }); err != nil {
		return err
	}
	f, err := r.acked(ctx, "the global service on every node", r.p.Nodes, r.replTotal+r.p.Nodes)
	if err != nil {
		return err
	}
	r.tb.Add(fmt.Sprintf("global service on %d nodes running (started / acked)", r.p.Nodes), "%.2f s / %.2f s", f.Delivered.Seconds(), f.Acked.Seconds())
	for _, op := range []string{"service ls", "service inspect", "service create"} {
		p50, p95, p99, n, errs := r.api[op].Summary()
		// No call timed (the prober did not start or answer) is a goal
		// missed, not met at 0 ms.
		r.tb.Goal("API "+op+" while busy p50 / p95 / p99", "p95 ≤ 50 ms", n > 0 && p95 <= goalAPIP95, "%s / %s / %s (%d calls, %d errors)", ms(p50), ms(p95), ms(p99), n, errs)
		if err := r.api[op].LastErr(); err != nil {
			r.logf("%s: last error: %v", op, err)
		}
	}
	// The same routes as the leader timed them, every caller's (the
	// nodes' included): what the client adds on top is its wait for CPU
	// in this process, beside the simulated nodes, and the network.
	now, _, err := r.leaderStat()
	if l, lerr := r.c.Leader(); err == nil && lerr == nil && l == r.apiLeader && r.apiBase != nil {
		for _, rt := range []struct{ op, method, route string }{
			{"service ls", "GET", "/v1/services"},
			{"service inspect", "GET", "/v1/services/{ref}"},
			{"service create", "POST", "/v1/services"},
			// Not the prober's: the nodes' reports, whose group commit is
			// the last step before a task counts as running.
			{"node status report", "POST", "/v1/agent/status"},
		} {
			match := []string{`method="` + rt.method + `"`, `route="` + rt.route + `"`}
			p50, _ := HistQuantile(r.apiBase, now, "warren_api_request_duration_seconds", match, .5)
			p95, n := HistQuantile(r.apiBase, now, "warren_api_request_duration_seconds", match, .95)
			r.tb.Add("API "+rt.op+" at the leader (its own timing) p50 / p95", "%s / %s (%d requests)", ms(p50), ms(p95), n)
		}
	}
	return nil
}

func (r *run) weightChange(ctx context.Context) error {
	var svc *api.Service
	err := r.retry(ctx, func() (err error) { svc, err = r.c.Admin.Service(ctx, "weights"); return err })
	if err != nil {
		return err
	}
	// Open the canary: v2 at 10 %.
	next := svc.Spec
	next.Version, next.Task.Container.Image = "v2", "warren/demo:v2"
	r.watch.Arm(func(a *api.Assignments) bool { w, ok := groupWeight(a, "weights", "v2"); return ok && w == 10 })
	if err := r.retry(ctx, func() error { _, err := r.c.Admin.UpdateService(ctx, "weights", next); return err }); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	opened := r.watch.Wait(wctx, r.p.Nodes)
	cancel()
	if len(opened) < r.p.Nodes {
		return fmt.Errorf("canary at 10 %%: %d of %d nodes saw it within 60s", len(opened), r.p.Nodes)
	}
	r.tb.Add("canary opened (v2 tasks start) on every node p50 / p99", "%s / %s", ms(Quantile(opened, .5)), ms(Quantile(opened, .99)))
	// The weight change itself: 10 → 50.
	next.Update.CanaryWeight = 50
	w0 := r.watchMark()
	r.watch.Arm(func(a *api.Assignments) bool { w, ok := groupWeight(a, "weights", "v2"); return ok && w == 50 })
	if err := r.retry(ctx, func() error { _, err := r.c.Admin.UpdateService(ctx, "weights", next); return err }); err != nil {
		return err
	}
	wctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	seen := r.watch.Wait(wctx, r.p.Nodes)
	cancel()
	if len(seen) < r.p.Nodes {
		return fmt.Errorf("weight 50: %d of %d nodes saw it within 60s", len(seen), r.p.Nodes)
	}
	r.watchFigures("for the weight change", w0, r.watchMark())
	p99 := Quantile(seen, .99)
	r.tb.Goal("weight change 10→50 in every node's table p50 / p99 / max", "p99 ≤ 1 s", p99 <= goalWeightP99, "%s / %s / %s", ms(Quantile(seen, .5)), ms(p99), ms(Quantile(seen, 1)))
	return nil
}

func (r *run) rolling(ctx context.Context) error {
	var svc *api.Service
	err := r.retry(ctx, func() (err error) { svc, err = r.c.Admin.Service(ctx, "roll"); return err })
	if err != nil {
		return err
	}
	next := svc.Spec
	next.Version, next.Task.Container.Image = "v2", "warren/demo:v2"
	s0, p0, err := r.leaderStat()
	if err != nil {
		return err
	}
	for _, n := range r.nodes {
		n.HeartbeatRTTs()
	}
	start := time.Now()
	if err := r.retry(ctx, func() error { _, err := r.c.Admin.UpdateService(ctx, "roll", next); return err }); err != nil {
		return err
	}
	stopAcks := r.watchAcks(ctx)
	defer stopAcks()
	diagnosed := false
	err = until(ctx, "the rolling update to complete", func() (bool, error) {
		if !diagnosed && time.Since(start) > 30*time.Second {
			diagnosed = true
			r.diagnose(ctx, "roll")
		}
		s, err := r.c.Admin.Service(ctx, "roll")
		if err != nil {
			return false, err
		}
		return s.SpecVersion > svc.SpecVersion && s.Update != nil && s.Update.State == api.UpdateCompleted, nil
	})
	if err != nil {
		return err
	}
	el := time.Since(start)
	s1, p1, err := r.leaderStat()
	if err != nil {
		return err
	}
	r.tb.Add(fmt.Sprintf("rolling update of %d tasks (parallelism %d)", r.p.RollingTasks, next.Update.Parallelism), "%.1f s", el.Seconds())
	r.drainFigures(ctx, "roll")
	var rtts []time.Duration
	for _, n := range r.nodes {
		rtts = append(rtts, n.HeartbeatRTTs()...)
	}
	r.tb.Add("heartbeat round trip during the rolling update p50 / p99 / max", "%s / %s / %s (%d beats)", ms(Quantile(rtts, .5)), ms(Quantile(rtts, .99)), ms(Quantile(rtts, 1)), len(rtts))
	r.raftFigures("during the rolling update", s0, s1, p0, p1, el)
	return nil
}

// watchAcks compares, every second, the service table each agent has in
// effect with what the leader heard it acknowledge, and logs nodes whose
// ack lags by more than 3s: an agent that is behind, versus an ack that
// does not arrive.
func (r *run) watchAcks(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		behindSince := map[string]time.Time{}
		logged := 0
		for ctx.Err() == nil && logged < 10 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			tables, err := r.c.Admin.Tables(ctx)
			if err != nil || !tables.Leader {
				continue
			}
			acked := map[string]uint64{}
			for _, n := range tables.Nodes {
				acked[n.NodeID] = n.Applied
			}
			for _, n := range r.nodes {
				have := n.agent.TableIndex()
				if acked[n.ID] >= have {
					delete(behindSince, n.ID)
					continue
				}
				if _, ok := behindSince[n.ID]; !ok {
					behindSince[n.ID] = time.Now()
				} else if time.Since(behindSince[n.ID]) > 3*time.Second && logged < 10 {
					logged++
					hb, _ := n.Heartbeats()
					r.logf("ack lag: %s has table %d in effect, the leader heard %d; last heartbeat ok %s ago (%d ok)", n.Hostname, have, acked[n.ID], time.Since(n.LastHeartbeat()).Round(time.Millisecond), hb)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// drainFigures says how the stops of service's old tasks were released:
// by every node's ack, or by the drain timeout (naming who did not ack).
func (r *run) drainFigures(ctx context.Context, service string) {
	tasks, err := r.c.Admin.Tasks(ctx, client.TaskFilter{Service: service})
	if err != nil {
		r.logf("drains: %v", err)
		return
	}
	var acked, timedOut int
	var waits []time.Duration
	for _, t := range tasks {
		if t.Drain == nil || t.Drain.Done.IsZero() {
			continue
		}
		waits = append(waits, t.Drain.Done.Sub(t.Drain.Since))
		if strings.HasPrefix(t.Drain.Message, "drain timeout") {
			if timedOut == 0 {
				r.logf("drain released by timeout: %s", t.Drain.Message)
				r.unackedNodes(t)
			}
			timedOut++
		} else {
			acked++
		}
	}
	r.tb.Add("rolling update: drains released by every node's ack / by the 10 s timeout", "%d / %d (drain p50 %s, max %s)", acked, timedOut, ms(Quantile(waits, .5)), ms(Quantile(waits, 1)))
}

// unackedNodes logs, for the nodes a drain timed out on, what their agent
// holds now: a table at or past the drain's index means the node applied it
// and its ack did not reach the leader in time; below it, the node never got
// or applied that table.
func (r *run) unackedNodes(t api.Task) {
	for _, n := range r.nodes {
		if !strings.Contains(t.Drain.Message, n.ID) {
			continue
		}
		var cur uint64
		if a := n.agent.Assignments(); a != nil {
			cur = a.Index
		}
		hb, _ := n.Heartbeats()
		r.logf("  %s: drain index %d, agent current %d, table in effect %d, last heartbeat ok %s ago (%d ok)",
			n.Hostname, t.Drain.Index, cur, n.agent.TableIndex(), time.Since(n.LastHeartbeat()).Round(time.Millisecond), hb)
	}
}

// diagnose logs, for tasks of service that the managers hold as assigned
// but not running, what their node's agent has: the stuck end of a rollout.
func (r *run) diagnose(ctx context.Context, service string) {
	tasks, err := r.c.Admin.Tasks(ctx, client.TaskFilter{Service: service})
	if err != nil {
		r.logf("diagnose: %v", err)
		return
	}
	byID := map[string]*Node{}
	for _, n := range r.nodes {
		byID[n.ID] = n
	}
	shown := 0
	for _, t := range tasks {
		stuckStart := t.DesiredState == api.TaskRunning && t.Status.State != api.TaskRunning
		stuckStop := t.DesiredState != api.TaskRunning && t.Status.State == api.TaskRunning
		if !stuckStart && !stuckStop || shown >= 6 {
			continue
		}
		shown++
		n := byID[t.NodeID]
		if n == nil {
			continue
		}
		var cur, applied uint64
		inCur := false
		if a := n.agent.Assignments(); a != nil {
			cur = a.Index
			for _, at := range a.Tasks {
				if at.ID == t.ID {
					inCur = true
				}
			}
		}
		if a := n.agent.Applied(); a != nil {
			applied = a.Index
		}
		r.logf("diagnose %s %s desired %s state %s (drain %+v): node %s agent current %d (has it: %v) applied %d table %d worker %+v",
			t.ID[:8], t.Version, t.DesiredState, t.Status.State, t.Drain, n.Hostname, cur, inCur, applied, n.agent.TableIndex(), n.worker.Tasks()[t.ID])
	}
	if s, _, err := r.leaderStat(); err == nil {
		r.logf("diagnose: leader store index %.0f", s["warren_store_index"])
	}
}

// crashWave makes 2 % of the running tasks exit with an error at once and
// times their restarts.
func (r *run) crashWave(ctx context.Context) error {
	crashed := 0
	for _, n := range r.nodes {
		for id, st := range n.worker.Tasks() {
			if st.State == api.TaskRunning && mrand.Float64() < 0.02 {
				if n.exec.Exit(id, 1) == nil {
					crashed++
				}
			}
		}
	}
	start := time.Now()
	// Give the reports a moment to arrive so the count first drops.
	time.Sleep(200 * time.Millisecond)
	if err := r.runningAtLeast(ctx, "crashed tasks running again", r.replTotal+r.p.Nodes); err != nil {
		return err
	}
	r.tb.Add("crash wave: tasks exiting 1 at once, back running", "%d in %.1f s", crashed, time.Since(start).Seconds())
	return nil
}

func (r *run) disconnectWave(ctx context.Context) error {
	k := int(float64(r.p.Nodes) * r.p.Disconnect)
	if k == 0 {
		return nil
	}
	cut := r.nodes[:k]
	var wg sync.WaitGroup
	for _, n := range cut {
		wg.Add(1)
		go func() { defer wg.Done(); n.Disconnect() }()
	}
	wg.Wait()
	time.Sleep(3 * time.Second)
	back := time.Now()
	for _, n := range cut {
		n.Start(ctx)
	}
	var delays []time.Duration
	err := until(ctx, "the cut-off nodes back", func() (bool, error) {
		delays = delays[:0]
		for _, n := range cut {
			if t := n.LastHeartbeat(); t.After(back) {
				delays = append(delays, t.Sub(back))
			}
		}
		return len(delays) == len(cut), nil
	})
	if err != nil {
		return err
	}
	r.tb.Add(fmt.Sprintf("disconnect wave: %d nodes (%.0f %%) back, heartbeat p50 / p99", k, 100*r.p.Disconnect), "%s / %s", ms(Quantile(delays, .5)), ms(Quantile(delays, .99)))
	return nil
}

func (r *run) failover(ctx context.Context) error {
	var elections, writes, nodeP99 []time.Duration
	for k := range r.p.Kills {
		old, err := r.c.Leader()
		if err != nil {
			return err
		}
		t0 := time.Now()
		r.c.Kill(old)
		// The write is tried from the kill on, as an operator's script
		// retrying would, not after the bench has found the new leader:
		// finding it scrapes every manager's /metrics, which on a busy
		// machine takes longer than the election.
		var wrote time.Duration
		werr := make(chan error, 1)
		go func() {
			werr <- until(ctx, "a write after the failover", func() (bool, error) {
				_, err := r.c.Admin.ScaleService(ctx, "probe-0", uint64(k%2))
				wrote = time.Since(t0)
				return err == nil, nil
			})
		}()
		err = until(ctx, "a new leader", func() (bool, error) {
			i, err := r.c.Leader()
			return err == nil && i != old, nil
		})
		if err != nil {
			return err
		}
		elections = append(elections, time.Since(t0))
		if err := <-werr; err != nil {
			return err
		}
		writes = append(writes, wrote)
		var per []time.Duration
		err = until(ctx, "every node heartbeating to the new leader", func() (bool, error) {
			per = per[:0]
			for _, n := range r.nodes {
				if t := n.LastHeartbeat(); t.After(t0) {
					per = append(per, t.Sub(t0))
				}
			}
			return len(per) == len(r.nodes), nil
		})
		if err != nil {
			return err
		}
		nodeP99 = append(nodeP99, Quantile(per, .99))
		if err := r.c.Restart(ctx, old); err != nil {
			return err
		}
		if err := r.c.waitVoters(ctx, 3); err != nil {
			return err
		}
	}
	if len(elections) == 0 {
		return nil
	}
	p99 := Quantile(writes, .99)
	r.tb.Add(fmt.Sprintf("leader killed ×%d: new leader seen in its /metrics p50 / max", len(elections)), "%s / %s", ms(Quantile(elections, .5)), ms(Quantile(elections, 1)))
	r.tb.Goal("failover: first write accepted after the kill p99", "≤ 2 s", p99 <= goalFailoverP99, "%s", ms(p99))
	r.tb.Add("failover: every node's heartbeat accepted again (p99 over nodes, worst kill)", "%s", ms(Quantile(nodeP99, 1)))
	return nil
}

func (r *run) summary() {
	rss := r.maxRSS.Load()
	if rss == 0 {
		return
	}
	r.tb.Goal("leader RSS (peak)", "≤ 300 MiB", rss <= goalLeaderRSS, "%s", mib(rss))
	if s, _, err := r.leaderStat(); err == nil {
		r.tb.Add("leader changes seen by the leader (warren_raft_elections_total)", "%.0f (incl. %d kills)", s["warren_raft_elections_total"], r.p.Kills)
	}
	r.tb.Add("API calls retried on 503 (no leader)", "%d", r.retries.Load())
}
