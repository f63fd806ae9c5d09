package raftnode_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/raftnode"
	"github.com/warrenhq/warren/controlplane/raftnode/raftnodetest"
	"github.com/warrenhq/warren/controlplane/store"
)

func TestThreeManagersOverMutualTLS(t *testing.T) {
	c := raftnodetest.NewCluster(t, 3, nil)
	c.Form()
	lead := c.Leader(10 * time.Second)

	members, err := lead.Node.Members()
	if err != nil {
		t.Fatal(err)
	}
	voters, leaders := 0, 0
	for _, m := range members {
		if m.Voter {
			voters++
		}
		if m.Leader {
			leaders++
		}
	}
	if len(members) != 3 || voters != 3 || leaders != 1 {
		t.Fatalf("members = %+v", members)
	}

	idx, err := lead.Node.Apply(context.Background(), raftnodetest.PutTask("t1"))
	if err != nil {
		t.Fatal(err)
	}
	c.WaitAll(idx, 10*time.Second)
	for _, m := range c.Members {
		if _, ok := m.Store.View().Task("t1"); !ok {
			t.Fatalf("%s lacks the acknowledged task", m.ID)
		}
	}
	c.RequireSameState()

	// A conflict from the FSM comes back as is.
	conflict := raftnodetest.PutTask("t1")
	conflict.Expect = []store.Expectation{{Kind: store.KindTask, ID: "t1"}}
	if _, err := lead.Node.Apply(context.Background(), conflict); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("conflicting write: err = %v, want store.ErrConflict", err)
	}

	// Followers redirect to the leader and refuse to verify leadership.
	for _, m := range c.Members {
		if m == lead {
			if err := m.Node.VerifyLeader(context.Background()); err != nil {
				t.Fatalf("leader VerifyLeader: %v", err)
			}
			continue
		}
		_, err := m.Node.Apply(context.Background(), raftnodetest.PutTask("t2"))
		var nle *raftnode.NotLeaderError
		if !errors.As(err, &nle) || nle.LeaderID != lead.ID || nle.LeaderAddr != lead.Addr || !errors.Is(err, raftnode.ErrNotLeader) {
			t.Fatalf("follower %s Apply: err = %v, want raftnode.NotLeaderError for %s@%s", m.ID, err, lead.ID, lead.Addr)
		}
		if err := m.Node.VerifyLeader(context.Background()); err == nil {
			t.Fatalf("follower %s verified leadership", m.ID)
		}
		st := m.Node.Stats()
		if st.State != "Follower" || st.AppliedIndex < idx || st.LastContact < 0 {
			t.Fatalf("follower %s stats = %+v", m.ID, st)
		}
	}
	// The election's notification waits, unread, in the latest-value channel.
	if ch := lead.Node.LeaderCh(); !<-ch || ch != lead.Node.LeaderCh() {
		t.Fatal("LeaderCh on the leader did not report leadership, or is not one channel")
	}

	// Demote and remove a follower; the configuration follows.
	var follower *raftnodetest.Member
	for _, m := range c.Members {
		if m != lead {
			follower = m
			break
		}
	}
	if err := lead.Node.DemoteVoter(follower.ID); err != nil {
		t.Fatal(err)
	}
	if err := lead.Node.RemoveServer(follower.ID); err != nil {
		t.Fatal(err)
	}
	members, _ = lead.Node.Members()
	if len(members) != 2 {
		t.Fatalf("after remove: members = %+v", members)
	}
}

// TestLeaderKilledUnderLoad kills the leader three times while writers keep
// proposing. Every acknowledged write must be present on every manager
// afterwards, and the restarted managers must catch up to identical state.
func TestLeaderKilledUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("kills leaders three times: ~15s")
	}
	c := raftnodetest.NewCluster(t, 3, nil)
	c.Form()
	c.Leader(10 * time.Second)

	var (
		mu      sync.Mutex
		acked   = map[string]uint64{}
		history []porcupine.Operation // register ops for the linearizability check
		base    = time.Now()
		clock   = func() int64 { return int64(time.Since(base)) } // monotonic
		nodes   sync.Mutex                                        // guards members[i].Node against the killer
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		ackCnt  = func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	)
	leader := func() *raftnode.Node {
		nodes.Lock()
		defer nodes.Unlock()
		for _, m := range c.Members {
			if m.Node != nil && m.Node.IsLeader() {
				return m.Node
			}
		}
		return nil
	}
	record := func(op porcupine.Operation) {
		mu.Lock()
		history = append(history, op)
		mu.Unlock()
	}
	// Writers put a task (for the ack-set check) and set one of a few
	// registers (node labels) to the task's ID in the same batch.
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				lead := leader()
				if lead == nil {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				id := fmt.Sprintf("w%d-%05d", w, seq)
				key := fmt.Sprintf("reg%d", seq%3)
				b := raftnodetest.PutTask(id)
				b.PutNodes = []api.Node{{ID: key, Spec: api.NodeSpec{Labels: map[string]string{"v": id}}}}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				call := clock()
				idx, err := lead.Apply(ctx, b)
				ret := clock()
				cancel()
				op := porcupine.Operation{ClientId: w, Input: regOp{write: true, key: key, value: id}, Call: call, Return: ret}
				if err == nil {
					mu.Lock()
					acked[id] = idx
					mu.Unlock()
				} else {
					// The write may still commit at any later time.
					op.Return = math.MaxInt64
				}
				record(op)
			}
		}(w)
	}
	// Readers read registers from the leader after VerifyLeader.
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				lead := leader()
				if lead == nil {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				key := fmt.Sprintf("reg%d", seq%3)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				call := clock()
				err := lead.VerifyLeader(ctx)
				cancel()
				if err != nil {
					continue // a failed read observed nothing
				}
				n, _ := lead.Store().View().Node(key)
				record(porcupine.Operation{ClientId: 4 + r, Input: regOp{key: key}, Output: n.Spec.Labels["v"], Call: call, Return: clock()})
				time.Sleep(2 * time.Millisecond)
			}
		}(r)
	}
	waitAcks := func(n int) {
		deadline := time.Now().Add(20 * time.Second)
		for ackCnt() < n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d of %d writes acknowledged", ackCnt(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	var failovers []time.Duration // informational: wall time is not asserted
	for round := 0; round < 3; round++ {
		waitAcks(ackCnt() + 30)
		lead := c.Leader(10 * time.Second)
		killed := -1
		for i, m := range c.Members {
			if m == lead {
				killed = i
			}
		}
		nodes.Lock()
		c.Stop(killed)
		nodes.Unlock()
		killedAt := time.Now()
		newLead := c.Leader(10 * time.Second)
		failovers = append(failovers, time.Since(killedAt).Round(time.Millisecond))
		if newLead == lead {
			t.Fatal("the killed manager is still leader")
		}
		waitAcks(ackCnt() + 30) // progress without the killed manager
		nodes.Lock()
		c.Start(killed)
		nodes.Unlock()
	}
	close(stop)
	wg.Wait()

	last := c.ApplyAnywhere(raftnodetest.PutTask("final"), 20*time.Second)
	c.WaitAll(last, 20*time.Second)
	c.RequireSameState()
	mu.Lock()
	defer mu.Unlock()
	for _, m := range c.Members {
		v := m.Store.View()
		for id := range acked {
			if _, ok := v.Task(id); !ok {
				t.Fatalf("%s lost acknowledged write %s (index %d)", m.ID, id, acked[id])
			}
		}
		members, err := m.Node.Members()
		if err != nil || len(members) != 3 {
			t.Fatalf("%s members after restarts = %+v, %v", m.ID, members, err)
		}
	}
	reads := 0
	for _, op := range history {
		if !op.Input.(regOp).write {
			reads++
		}
	}
	if reads == 0 {
		t.Fatal("no read succeeded: linearizability was not checked")
	}
	if res := porcupine.CheckOperationsTimeout(registerModel, history, 20*time.Second); res != porcupine.Ok {
		t.Fatalf("register history of %d operations is %s, want linearizable", len(history), res)
	}
	t.Logf("%d writes acknowledged, %d linearizable reads across 3 leader kills (new leader after %v), final index %d", len(acked), reads, failovers, last)
}

// TestSnapshotsAcrossRestarts: a follower that was down while the leader
// snapshotted and compacted catches up by snapshot, and a full-cluster
// restart rebuilds identical state from snapshot plus log.
// Run in clear and with every member sealing its log and snapshots under
// its own key (so an installed snapshot is opened and sealed again).
func TestSnapshotsAcrossRestarts(t *testing.T) {
	t.Run("clear", func(t *testing.T) { testSnapshotsAcrossRestarts(t, false) })
	t.Run("sealed", func(t *testing.T) { testSnapshotsAcrossRestarts(t, true) })
}

func testSnapshotsAcrossRestarts(t *testing.T, sealed bool) {
	c := raftnodetest.NewCluster(t, 3, func(cfg *raftnode.Config) {
		cfg.SnapshotThreshold = 16
		cfg.TrailingLogs = 4
		cfg.SnapshotInterval = 100 * time.Millisecond
		if sealed {
			k := sha256.Sum256([]byte("raft key of " + cfg.NodeID))
			cfg.EncryptionKey = k[:]
		}
	})
	c.Form()
	c.Leader(10 * time.Second)
	write := func(prefix string, n int) uint64 {
		var idx uint64
		for i := 0; i < n; i++ {
			idx = c.ApplyAnywhere(raftnodetest.PutTask(fmt.Sprintf("%s-%03d", prefix, i)), 10*time.Second)
		}
		return idx
	}
	c.WaitAll(write("a", 40), 10*time.Second)

	lead := c.Leader(10 * time.Second)
	down := 1
	if c.Members[down] == lead {
		down = 2
	}
	missedFrom := c.Members[down].Store.Index() + 1
	c.Stop(down)
	idx := write("b", 60)
	// Make sure the log the follower misses is compacted away, so that it
	// can only catch up by installing the leader's snapshot.
	if err := lead.Node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if first, err := lead.Node.FirstLogIndex(); err != nil || first <= missedFrom {
		t.Fatalf("leader log starts at %d (%v); the follower needs %d, so no snapshot install would be exercised", first, err, missedFrom)
	}
	c.Start(down)
	c.WaitAll(idx, 20*time.Second)
	c.RequireSameState()
	if v := c.Members[down].Store.View(); len(v.Tasks()) != 100 {
		t.Fatalf("restarted follower has %d tasks, want 100", len(v.Tasks()))
	}

	before := raftnodetest.StateBytes(t, lead.Store)
	beforeIdx := lead.Store.Index()
	for i := range c.Members {
		c.Stop(i)
	}
	for i := range c.Members {
		ok, err := raftnode.HasState(c.Members[i].Dir)
		if err != nil || !ok {
			t.Fatalf("raftnode.HasState(%s) = %v, %v after running", c.Members[i].Dir, ok, err)
		}
		snaps, _ := os.ReadDir(filepath.Join(c.Members[i].Dir, "snapshots"))
		if len(snaps) == 0 {
			t.Fatalf("%s wrote no snapshot", c.Members[i].ID)
		}
		if sealed {
			_ = filepath.WalkDir(c.Members[i].Dir, func(p string, d os.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					if b, _ := os.ReadFile(p); bytes.Contains(b, []byte("b-05")) || bytes.Contains(b, []byte("a-00")) {
						t.Errorf("%s holds task IDs in clear", p)
					}
				}
				return nil
			})
		}
	}
	for i := range c.Members {
		c.Start(i)
	}
	c.Leader(10 * time.Second)
	c.WaitAll(beforeIdx, 20*time.Second)
	for _, m := range c.Members {
		if !bytes.Equal(raftnodetest.StateBytes(t, m.Store), before) {
			t.Fatalf("%s state after full restart differs from before", m.ID)
		}
	}
	if members, _ := c.Members[0].Node.Members(); len(members) != 3 {
		t.Fatalf("bootstrap flag on restart changed membership: %+v", members)
	}
}

// TestNoQuorumIsReadOnly: with two of three managers down the survivor —
// here the old leader — refuses writes with raftnode.ErrNoQuorum, serves reads, and
// accepts writes again once one manager returns.
func TestNoQuorumIsReadOnly(t *testing.T) {
	c := raftnodetest.NewCluster(t, 3, nil)
	c.Form()
	lead := c.Leader(10 * time.Second)
	idx, err := lead.Node.Apply(context.Background(), raftnodetest.PutTask("before"))
	if err != nil {
		t.Fatal(err)
	}
	c.WaitAll(idx, 10*time.Second)
	// A subscriber that never reads must not stall raft, and later sees only
	// the latest state.
	leaderCh := lead.Node.LeaderCh()

	var downed []int
	for i, m := range c.Members {
		if m != lead {
			c.Stop(i)
			downed = append(downed, i)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err = lead.Node.Apply(ctx, raftnodetest.PutTask("during"))
	if !errors.Is(err, raftnode.ErrNoQuorum) || !strings.Contains(err.Error(), "read-only mode") {
		t.Fatalf("Apply without quorum: err = %v, want raftnode.ErrNoQuorum", err)
	}
	// Later writes fail the same way, without waiting on the dead leader.
	if _, err := lead.Node.Apply(ctx, raftnodetest.PutTask("during2")); !errors.Is(err, raftnode.ErrNoQuorum) {
		t.Fatalf("second Apply without quorum: err = %v", err)
	}
	if _, ok := lead.Store.View().Task("before"); !ok {
		t.Fatal("reads fail without quorum")
	}
	if lead.Node.IsLeader() {
		t.Fatal("a manager without quorum still claims leadership")
	}
	if v := <-leaderCh; v {
		t.Fatal("LeaderCh still says leader after stepping down")
	}

	c.Start(downed[0])
	c.ApplyAnywhere(raftnodetest.PutTask("after"), 20*time.Second)
}

func TestHasStateOnFreshDirAndConfigErrors(t *testing.T) {
	dir := t.TempDir()
	if ok, err := raftnode.HasState(dir); ok || err != nil {
		t.Fatalf("raftnode.HasState(empty) = %v, %v", ok, err)
	}
	if _, err := raftnode.New(raftnode.Config{DataDir: dir}, store.New()); err == nil {
		t.Fatal("New accepted a config without NodeID and Stream")
	}
}

// regOp is a write of value to, or a read of, one register.
type regOp struct {
	write      bool
	key, value string
}

// registerModel is a set of independent registers, initially "".
var registerModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(regOp).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() interface{} { return "" },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		in := input.(regOp)
		if in.write {
			return true, in.value
		}
		return output.(string) == state.(string), state
	},
	DescribeOperation: func(input, output interface{}) string {
		in := input.(regOp)
		if in.write {
			return fmt.Sprintf("put %s=%s", in.key, in.value)
		}
		return fmt.Sprintf("get %s -> %v", in.key, output)
	},
}

func TestApplyRejectsHugeBatchBeforeRaft(t *testing.T) {
	// No cluster needed: the size check comes before any raft call, so a
	// zero Node must not be touched.
	b := raftnodetest.PutTask("big")
	b.PutTasks[0].Spec.Container.Env = []string{strings.Repeat("x", raftnode.MaxEntryBytes)}
	if _, err := new(raftnode.Node).Apply(context.Background(), b); !errors.Is(err, raftnode.ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

// TestRaftPortRequiresClientCertificate: the stream layer is only as safe
// as the listener it is given; with the manager's mutual-TLS listener a
// peer without a cluster certificate cannot speak raft, and the cluster
// keeps working.
func TestRaftPortRequiresClientCertificate(t *testing.T) {
	c := raftnodetest.NewCluster(t, 1, nil)
	m := c.Start(0)
	c.Leader(10 * time.Second)
	conn, err := tls.Dial("tcp", m.Addr, &tls.Config{RootCAs: c.RootCAs(), NextProtos: []string{"warren-raft"}, MinVersion: tls.VersionTLS13})
	if err == nil {
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		// A raft RPC type byte; the server must refuse before reading it.
		_, _ = conn.Write([]byte{0})
		_, err = conn.Read(make([]byte, 1))
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("anonymous peer: err = %v, want a TLS certificate error", err)
	}
	if _, err := m.Node.Apply(context.Background(), raftnodetest.PutTask("still-works")); err != nil {
		t.Fatal(err)
	}
}

// TestRestartedFollowerCatchesUpBeforeAnswering restarts a follower under a
// read loop. Its store comes back from the snapshot only; until it has
// applied the rest of its log, CaughtUp must say no — a store that said yes
// while missing tasks it held before the restart would make an API read
// deny that they exist.
func TestRestartedFollowerCatchesUpBeforeAnswering(t *testing.T) {
	c := raftnodetest.NewCluster(t, 3, nil)
	c.Form()
	lead := c.Leader(10 * time.Second)
	var idx uint64
	for i := 0; i < 30; i++ {
		idx = c.ApplyAnywhere(raftnodetest.PutTask(fmt.Sprintf("t-%03d", i)), 10*time.Second)
	}
	c.WaitAll(idx, 10*time.Second)
	down := 1
	if c.Members[down] == lead {
		down = 2
	}
	c.Stop(down)
	// While it is down the leader backs off from it, as after a crash.
	for i := 30; i < 40; i++ {
		idx = c.ApplyAnywhere(raftnodetest.PutTask(fmt.Sprintf("t-%03d", i)), 10*time.Second)
	}
	m := c.Start(down)
	reads, early, missing := 0, 0, 0
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		reads++
		have, want, ok := m.Node.CaughtUp()
		if !ok {
			early++
			if ctx.Err() != nil {
				t.Fatalf("not caught up after 20s: store at %d of %d", have, want)
			}
			time.Sleep(time.Millisecond)
			continue
		}
		// What the follower held before it stopped must all be there.
		v := m.Store.View()
		for i := 0; i < 30; i++ {
			if _, ok := v.Task(fmt.Sprintf("t-%03d", i)); !ok {
				missing++
			}
		}
		break
	}
	t.Logf("%d checks, %d before the store caught up, %d tasks missing once caught up", reads, early, missing)
	if missing != 0 {
		t.Fatalf("caught up with %d of the tasks held before the restart missing", missing)
	}
	if early == 0 {
		t.Fatalf("the restarted store was never behind: the test did not exercise a restart")
	}
	if err := m.Node.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	c.WaitAll(idx, 10*time.Second)
}

// TestRestartedLeaderWithUncommittedTailCatchesUp: a leader cut off from
// its followers appends entries that never commit, then dies. The new
// leader writes nothing over most of that tail. When the old leader comes
// back it must count as caught up once it has the new leader's commit
// index, not wait for its abandoned tail forever.
func TestRestartedLeaderWithUncommittedTailCatchesUp(t *testing.T) {
	c := raftnodetest.NewCluster(t, 3, nil)
	c.Form()
	lead := c.Leader(10 * time.Second)
	idx := c.ApplyAnywhere(raftnodetest.PutTask("committed"), 10*time.Second)
	c.WaitAll(idx, 10*time.Second)
	li := -1
	for i, m := range c.Members {
		if m == lead {
			li = i
		} else {
			c.Stop(i)
		}
	}
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			_, _ = lead.Node.Apply(ctx, raftnodetest.PutTask(fmt.Sprint("lost-", i)))
		}()
	}
	wg.Wait()
	tail := lead.Node.Stats().LastIndex
	if tail < idx+3 {
		t.Fatalf("the cut-off leader's log ends at %d, committed %d: no uncommitted tail to test with", tail, idx)
	}
	c.Stop(li)
	for i := range c.Members {
		if i != li {
			c.Start(i)
		}
	}
	c.Leader(10 * time.Second)
	m := c.Start(li)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	if err := m.Node.WaitCaughtUp(ctx); err != nil {
		t.Fatalf("old leader with an uncommitted tail to %d: %v", tail, err)
	}
	v := m.Store.View()
	if _, ok := v.Task("committed"); !ok {
		t.Fatal("caught up without the committed task")
	}
	if _, ok := v.Task("lost-0"); ok {
		t.Fatal("an entry that never committed was applied")
	}
}

// TestJoiningMemberIsNotCaughtUpBeforeItHearsALeader: a manager that has
// just joined starts with an empty log; its empty store must not count as
// caught up until a leader has told it what is committed.
func TestJoiningMemberIsNotCaughtUpBeforeItHearsALeader(t *testing.T) {
	c := raftnodetest.NewCluster(t, 2, nil)
	c.Start(0)
	lead := c.Leader(10 * time.Second)
	c.ApplyAnywhere(raftnodetest.PutTask("t-1"), 10*time.Second)
	m := c.Start(1)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	err := m.Node.WaitCaughtUp(ctx)
	cancel()
	if !errors.Is(err, raftnode.ErrCatchingUp) || !strings.Contains(err.Error(), "has not heard from a leader") {
		t.Fatalf("joiner not yet in the configuration: WaitCaughtUp = %v, want ErrCatchingUp", err)
	}
	if err := lead.Node.AddNonvoter(m.ID, m.Addr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	if err := m.Node.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Store.View().Task("t-1"); !ok {
		t.Fatal("caught up without the task committed before the join")
	}
}
