package manager

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/testutil"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type testManager struct {
	m      *Manager
	cancel context.CancelFunc
	done   chan struct{}
	cfg    Config
}

func start(t *testing.T, cfg Config) *testManager {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	m, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open manager %s: %v", cfg.AdvertiseAddr, err)
	}
	sctx, scancel := context.WithCancel(context.Background())
	tm := &testManager{m: m, cancel: scancel, done: make(chan struct{}), cfg: cfg}
	go func() {
		defer close(tm.done)
		_ = m.Serve(sctx)
	}()
	return tm
}

func (tm *testManager) stop() {
	tm.cancel()
	tm.m.Close()
	<-tm.done
}

func (tm *testManager) client(t *testing.T) *client.Client {
	t.Helper()
	c, err := tm.m.LocalClient()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestThreeManagersFailover builds a cluster the way operators do — init,
// then two joins with the manager token — kills the leader, checks that a
// new one takes writes without losing acknowledged ones, and that the old
// leader resumes from its data dir and catches up.
func TestThreeManagersFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three managers")
	}
	log := zaptest.NewLogger(t).WithOptions()
	base := t.TempDir()
	cfg := func(i int) Config {
		return Config{DataDir: filepath.Join(base, fmt.Sprint(i)), Logger: log.Named(fmt.Sprint("m", i)), Hostname: fmt.Sprint("m", i)}
	}
	c1 := cfg(1)
	c1.AdvertiseAddr = freeAddr(t)
	c1.ListenAddr = c1.AdvertiseAddr
	c1.Init = &InitOptions{NodeDownGrace: time.Minute}
	m1 := start(t, c1)
	res := m1.m.InitResult()
	if res == nil || !strings.HasPrefix(res.ManagerToken, "WRN-1-") {
		t.Fatalf("init result %+v", res)
	}
	ms := []*testManager{m1}
	for i := 2; i <= 3; i++ {
		c := cfg(i)
		c.AdvertiseAddr = freeAddr(t)
		c.ListenAddr = c.AdvertiseAddr
		c.Join = &JoinOptions{Addr: c1.AdvertiseAddr, Token: res.ManagerToken}
		ms = append(ms, start(t, c))
	}
	t.Cleanup(func() {
		for _, m := range ms {
			if m != nil {
				m.stop()
			}
		}
	})
	ctx := context.Background()
	testutil.Eventually(t, "three voters", 30*time.Second, func() error {
		info, err := ms[0].client(t).Info(ctx)
		if err != nil {
			return err
		}
		voters := 0
		for _, m := range info.Managers {
			if m.Voter {
				voters++
			}
		}
		if voters != 3 {
			return fmt.Errorf("%d voters: %+v", voters, info.Managers)
		}
		return nil
	})

	// A worker token does not make a manager: the join is refused before
	// raft is touched.
	bad := cfg(9)
	bad.AdvertiseAddr = freeAddr(t)
	bad.ListenAddr = bad.AdvertiseAddr
	bad.Join = &JoinOptions{Addr: c1.AdvertiseAddr, Token: res.WorkerToken}
	if _, err := Open(ctx, bad); err == nil || !strings.Contains(err.Error(), "worker") {
		t.Fatalf("manager join with a worker token: err = %v", err)
	}

	var acked []string
	create := func(m *testManager, name string) error {
		spec := api.ServiceSpec{Name: name, Mode: api.ModeReplicated, Replicas: 0, Task: api.TaskSpec{Container: api.ContainerSpec{Image: "warren/demo:v1"}}}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := m.client(t).CreateService(cctx, spec)
		if err == nil {
			acked = append(acked, name)
		}
		return err
	}
	for i := 0; i < 5; i++ {
		if err := create(ms[i%3], fmt.Sprintf("before-%d", i)); err != nil {
			t.Fatalf("write through manager %d: %v", i%3+1, err)
		}
	}

	leader := -1
	for i, m := range ms {
		if m.m.Raft().IsLeader() {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatal("no leader")
	}
	killedAt := time.Now()
	ms[leader].stop()
	killed := ms[leader]
	ms[leader] = nil
	var survivor *testManager
	for _, m := range ms {
		if m != nil {
			survivor = m
		}
	}
	testutil.Eventually(t, "write after leader loss", 20*time.Second, func() error {
		return create(survivor, fmt.Sprintf("after-%d", len(acked)))
	})
	t.Logf("first acknowledged write %s after the leader was killed", time.Since(killedAt).Round(time.Millisecond))

	// The killed manager resumes from its data dir (no init, no join) and
	// catches up with everything acknowledged meanwhile.
	rc := killed.cfg
	rc.Init, rc.Join = nil, nil
	ms[leader] = start(t, rc)
	testutil.Eventually(t, "restarted manager catches up", 30*time.Second, func() error {
		v := ms[leader].m.Store().View()
		for _, name := range acked {
			if _, ok := v.ServiceByName(name); !ok {
				return fmt.Errorf("service %s missing on the restarted manager", name)
			}
		}
		return nil
	})

	// Loss of quorum: with two managers down, reads work and writes are
	// refused with the read-only message.
	var up *testManager
	for i, m := range ms {
		if m == survivor || up != nil {
			continue
		}
		_ = i
		up = m
	}
	for i, m := range ms {
		if m != nil && m != up {
			m.stop()
			ms[i] = nil
		}
	}
	if _, err := up.client(t).Stale().Services(ctx); err != nil {
		t.Fatalf("stale read without quorum: %v", err)
	}
	err := create(up, "no-quorum")
	if err == nil || !strings.Contains(err.Error(), "no quorum") {
		t.Fatalf("write without quorum: err = %v, want the read-only message", err)
	}
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 503 {
		t.Fatalf("write without quorum: %v, want a 503 API error", err)
	}
}
