package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/testutil"
)

// TestTenConcurrentJoins: two managers and eight workers join one manager
// at the same moment. Every join succeeds — a version conflict between
// them is the server's to retry — and every node ends up whole: a node
// record with a subnet, and for a manager a raft seat.
func TestTenConcurrentJoins(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three managers")
	}
	log := zaptest.NewLogger(t)
	base := t.TempDir()
	c1 := Config{DataDir: filepath.Join(base, "m1"), Logger: log.Named("m1"), Hostname: "m1", Init: &InitOptions{NodeDownGrace: time.Minute}}
	c1.AdvertiseAddr = freeAddr(t)
	c1.ListenAddr = c1.AdvertiseAddr
	m1 := start(t, c1)
	res := m1.m.InitResult()

	const managers, workers = 2, 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	var joined []*testManager
	errs := make([]error, managers+workers)
	for i := range managers + workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir := filepath.Join(base, fmt.Sprint("n", i))
			if i < managers {
				c := Config{DataDir: dir, Logger: log.Named(fmt.Sprint("n", i)), Hostname: fmt.Sprint("n", i),
					Join: &JoinOptions{Addr: c1.AdvertiseAddr, Token: res.ManagerToken}}
				c.AdvertiseAddr = freeAddr(t)
				c.ListenAddr = c.AdvertiseAddr
				m, err := Open(t.Context(), c)
				errs[i] = err
				if err == nil {
					tm := &testManager{m: m, cfg: c, done: make(chan struct{})}
					ctx, cancel := context.WithCancel(context.Background())
					tm.cancel = cancel
					go func() { defer close(tm.done); _ = m.Serve(ctx) }()
					mu.Lock()
					joined = append(joined, tm)
					mu.Unlock()
				}
				return
			}
			_, _, _, errs[i] = Enroll(t.Context(), dir, c1.AdvertiseAddr, res.WorkerToken, client.JoinRequest{
				Role: string(api.RoleWorker), Hostname: fmt.Sprint("n", i), Addr: fmt.Sprintf("192.0.2.%d", i+1)})
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, m := range joined {
			m.stop()
		}
		m1.stop()
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("join %d: %v", i, err)
		}
	}
	v := m1.m.Store().View()
	if n := len(v.Nodes()); n != 1+managers+workers {
		t.Fatalf("%d nodes after %d joins, want %d", n, managers+workers, 1+managers+workers)
	}
	for _, n := range v.Nodes() {
		if _, ok := v.Cluster().Subnets[n.ID]; !ok {
			t.Errorf("node %s (%s) has no subnet", n.ID, n.Status.Hostname)
		}
	}
	testutil.Eventually(t, "three raft voters", 30*time.Second, func() error {
		members, err := m1.m.Raft().Members()
		if err != nil {
			return err
		}
		voters := 0
		for _, m := range members {
			if m.Voter {
				voters++
			}
		}
		if len(members) != 1+managers || voters != 1+managers {
			return fmt.Errorf("%d members, %d voters", len(members), voters)
		}
		return nil
	})

	// A refused join leaves nothing behind: no data dir a later attempt
	// would have to clean up.
	bad := Config{DataDir: filepath.Join(base, "refused"), Logger: log.Named("refused"), Hostname: "refused",
		Join: &JoinOptions{Addr: c1.AdvertiseAddr, Token: res.WorkerToken}}
	bad.AdvertiseAddr = freeAddr(t)
	bad.ListenAddr = bad.AdvertiseAddr
	if _, err := Open(t.Context(), bad); err == nil {
		t.Fatal("a manager joined with a worker token")
	}
	if _, err := os.Stat(bad.DataDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused join left its data dir behind: %v", err)
	}
	if n := len(m1.m.Store().View().Nodes()); n != 1+managers+workers {
		t.Fatalf("a refused join added a node: %d nodes", n)
	}
}
