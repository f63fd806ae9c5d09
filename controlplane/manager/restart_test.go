package manager

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/testutil"
)

// threeManagers builds a cluster the way operators do: init, then two
// joins with the manager token, and waits for three voters.
func threeManagers(t *testing.T) []*testManager {
	t.Helper()
	log := zaptest.NewLogger(t)
	base := t.TempDir()
	cfg := func(i int) Config {
		addr := freeAddr(t)
		return Config{DataDir: filepath.Join(base, fmt.Sprint(i)), Logger: log.Named(fmt.Sprint("m", i)), Hostname: fmt.Sprint("m", i),
			AdvertiseAddr: addr, ListenAddr: addr}
	}
	c1 := cfg(1)
	c1.Init = &InitOptions{NodeDownGrace: time.Minute}
	ms := []*testManager{start(t, c1)}
	for i := 2; i <= 3; i++ {
		c := cfg(i)
		c.Join = &JoinOptions{Addr: c1.AdvertiseAddr, Token: ms[0].m.InitResult().ManagerToken}
		ms = append(ms, start(t, c))
	}
	t.Cleanup(func() {
		for _, m := range ms {
			if m != nil {
				m.stop()
			}
		}
	})
	testutil.Eventually(t, "three voters", 30*time.Second, func() error {
		info, err := ms[0].client(t).Info(t.Context())
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
			return fmt.Errorf("%d voters", voters)
		}
		return nil
	})
	return ms
}

func demoSpec(name string) api.ServiceSpec {
	return api.ServiceSpec{Name: name, Mode: api.ModeReplicated, Task: api.TaskSpec{Container: api.ContainerSpec{Image: "warren/demo:v1"}}}
}

// restartTally counts what reads and writes through a restarting manager
// were answered.
type restartTally struct {
	mu                                 sync.Mutex
	ok, notFound, unavailable, refused int
	noAPIAddr                          int
	other                              []string
}

func (r *restartTally) add(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err == nil:
		r.ok++
	case client.IsNotFound(err):
		r.notFound++
	case strings.Contains(err.Error(), "no known API address"):
		r.noAPIAddr++
	case client.StatusOf(err) == http.StatusServiceUnavailable:
		r.unavailable++
	case client.StatusOf(err) == 0:
		r.refused++ // the socket is not served yet
	default:
		r.other = append(r.other, err.Error())
	}
}

// TestRestartedManagerNeverDeniesExistingServices restarts a follower
// while a client reads existing services through it (linearizable and
// stale) and writes through it. A restarted manager's store comes back from
// its last snapshot only; it must not answer "not found" from it, nor fail
// writes because it does not know the leader's API address yet.
func TestRestartedManagerNeverDeniesExistingServices(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three managers")
	}
	ms := threeManagers(t)
	ctx := t.Context()
	leader := -1
	for i, m := range ms {
		if m.m.Raft().IsLeader() {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatal("no leader")
	}
	lc := ms[leader].client(t)
	const existing = 5
	for i := 0; i < existing; i++ {
		if _, err := lc.CreateService(ctx, demoSpec(fmt.Sprint("svc-", i))); err != nil {
			t.Fatal(err)
		}
	}
	f := (leader + 1) % 3
	testutil.Eventually(t, "follower has the services", 10*time.Second, func() error {
		if n := len(ms[f].m.Store().View().Services()); n != existing {
			return fmt.Errorf("%d services", n)
		}
		return nil
	})
	rc := ms[f].cfg
	rc.Init, rc.Join = nil, nil
	ms[f].stop()
	ms[f] = nil
	// Entries the follower misses while it is down, so that it restarts
	// behind and the leader has backed off from it.
	for i := 0; i < 10; i++ {
		if _, err := lc.CreateService(ctx, demoSpec(fmt.Sprint("later-", i))); err != nil {
			t.Fatal(err)
		}
	}

	sock, err := client.New(client.Config{Socket: filepath.Join(rc.DataDir, SocketName), Timeout: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var reads, stale, writes restartTally
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprint("svc-", i%existing)
			_, err := sock.Service(ctx, name)
			reads.add(err)
			_, err = sock.Stale().Service(ctx, name)
			stale.add(err)
			if i%10 == 0 {
				_, err = sock.ScaleService(ctx, name, uint64(i%3))
				writes.add(err)
			}
			if err != nil && client.StatusOf(err) == 0 {
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()
	ms[f] = start(t, rc)
	// Read on until the restarted manager has answered many reads.
	testutil.Eventually(t, "reads answered after the restart", 30*time.Second, func() error {
		stale.mu.Lock()
		defer stale.mu.Unlock()
		if stale.ok < 200 {
			return fmt.Errorf("%d stale reads answered", stale.ok)
		}
		return nil
	})
	close(stop)
	wg.Wait()
	for _, x := range []struct {
		what string
		r    *restartTally
	}{{"linearizable reads", &reads}, {"stale reads", &stale}, {"writes", &writes}} {
		t.Logf("%s: %d ok, %d not found, %d unavailable (503), %d no leader API address, %d before the socket was served, other %v",
			x.what, x.r.ok, x.r.notFound, x.r.unavailable, x.r.noAPIAddr, x.r.refused, x.r.other)
		if x.r.notFound != 0 || x.r.noAPIAddr != 0 || len(x.r.other) != 0 {
			t.Errorf("%s through the restarted manager: %d answered not found, %d had no leader API address, other errors %v",
				x.what, x.r.notFound, x.r.noAPIAddr, x.r.other)
		}
	}
	if n := len(ms[f].m.Store().View().Services()); n != existing+10 {
		t.Fatalf("restarted manager holds %d services, want %d", n, existing+10)
	}
}
