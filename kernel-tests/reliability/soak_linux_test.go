//go:build linux

package reliability

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/manager"
)

// usage is what one manager process holds at one moment.
type usage struct {
	goroutines, fds int
	rssKB           int
	raftDB          int64 // bytes of raft.db (log and stable store)
	term, commit    uint64
}

func (u usage) String() string {
	return fmt.Sprintf("%d goroutines, %d fds, RSS %d MiB, raft.db %.1f MiB", u.goroutines, u.fds, u.rssKB>>10, float64(u.raftDB)/(1<<20))
}

// metricValue is the value of an unlabelled metric in a /metrics text.
func metricValue(text, name string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

func (h *host) usage() (usage, error) {
	var u usage
	pid := h.pid()
	if pid == 0 {
		return u, fmt.Errorf("%s: warren is not running", h.name)
	}
	text, err := h.scrape()
	if err != nil {
		return u, fmt.Errorf("%s metrics: %w", h.name, err)
	}
	for name, dst := range map[string]*uint64{"warren_raft_term": &u.term, "warren_raft_commit_index": &u.commit} {
		v, ok := metricValue(text, name)
		if !ok {
			return u, fmt.Errorf("%s metrics: no %s", h.name, name)
		}
		*dst = uint64(v)
	}
	g, ok := metricValue(text, "go_goroutines")
	if !ok {
		return u, fmt.Errorf("%s metrics: no go_goroutines", h.name)
	}
	u.goroutines = int(g)
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return u, err
	}
	u.fds = len(fds)
	rss, _, _ := strings.Cut(vmRSS(pid), " ")
	if u.rssKB, err = strconv.Atoi(rss); err != nil {
		return u, fmt.Errorf("%s: VmRSS %q: %w", h.name, rss, err)
	}
	fi, err := os.Stat(filepath.Join(h.dataDir, manager.RaftDir, "raft.db"))
	if err != nil {
		return u, err
	}
	u.raftDB = fi.Size()
	return u, nil
}

// usages samples every manager; a sample that cannot be taken fails the test.
func (c *cluster) usages(t *testing.T) []usage {
	t.Helper()
	out := make([]usage, len(c.hosts))
	for i, h := range c.hosts {
		u, err := h.usage()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = u
	}
	return out
}

// durations of the soak's phases: warm-up, churn, idle.
func soakPhases() (warm, churn, idle time.Duration) {
	if fullProfile() {
		minutes := 10
		if m, err := strconv.Atoi(os.Getenv("WARREN_SOAK_MINUTES")); err == nil && m > 0 {
			minutes = m
		}
		return 2 * time.Minute, time.Duration(minutes) * time.Minute, 10 * time.Minute
	}
	return 20 * time.Second, 40 * time.Second, 20 * time.Second
}

// soakRaftFlags make the soak's managers compact their log often: every
// second raft checks whether 128 entries accumulated, snapshots, and keeps
// 128 behind it. The log then holds at most about 256 entries, and bolt
// reuses the freed pages from then on, so once the log has been through
// that twice (compactedAfter) raft.db must stop growing — the check the
// default sizes (8192 + 10240 entries) would only reach after hours of
// churn.
var soakRaftFlags = []string{"--raft-snapshot-threshold", "128", "--raft-snapshot-interval", "1s", "--raft-trailing-logs", "128"}

const compactedAfter = 2 * (128 + 128)

// TestSoak (T6): three managers with 100 services churned — created,
// updated, scaled and removed — for the profile's duration. Every manager's
// goroutines, file descriptors and RSS must come back to what they were
// after the warm-up, raft.db must stop growing once raft compacts its log,
// and no term may change while the cluster is idle.
//
// The services are constrained to a label no node has, so every change
// goes through the API, raft, the store and the leader's planner (which
// explains each unplaced task) without starting containers: the soak is
// the manager's, and the CPU it would spend on containerd is left to the
// other engineers' kernel tests.
func TestSoak(t *testing.T) {
	warm, churnFor, idleFor := soakPhases()
	c := managers(t)
	killAllNow(c.hosts)
	for _, h := range c.hosts {
		h.start(append(append([]string(nil), h.args...), soakRaftFlags...)...)
	}
	c.leaderHost(t, 90*time.Second)
	h1 := c.hosts[0]
	const services = 100
	name := func(i int) string { return fmt.Sprintf("soak-%03d", i) }
	create := func(h *host, i int) error {
		_, err := h.cli("service", "create", "-d", "--image", "warren/demo:v1", "--replicas", "2",
			"--constraint", "node.labels.soak==nowhere", name(i))
		return err
	}
	for i := 0; i < services; i++ {
		if err := create(h1, i); err != nil {
			t.Fatal(err)
		}
	}

	var ops, failed atomic.Int64
	var failMu sync.Mutex
	firstErr := map[string]string{} // operation -> its first error
	churn := func(d time.Duration, seed uint64) {
		stop := time.Now().Add(d)
		var wg sync.WaitGroup
		for w := 0; w < 2; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				rnd := rand.New(rand.NewPCG(seed, uint64(w)))
				// Each churner owns half the services, so its remove and
				// create of one service never race the other's update.
				for time.Now().Before(stop) {
					i := 2*rnd.IntN(services/2) + w
					h := c.hosts[rnd.IntN(len(c.hosts))]
					var err error
					op := [...]string{"update env", "scale", "update label", "rm and create"}[rnd.IntN(4)]
					switch op {
					case "update env":
						_, err = h.cli("service", "update", "-d", "--env", fmt.Sprintf("SOAK=%d", rnd.Int()), name(i))
					case "scale":
						_, err = h.cli("service", "scale", "-d", fmt.Sprintf("%s=%d", name(i), 1+rnd.IntN(3)))
					case "update label":
						_, err = h.cli("service", "update", "-d", "--label", fmt.Sprintf("soak=%d", rnd.Int()), name(i))
					default:
						if _, err = h.cli("service", "rm", name(i)); err == nil {
							err = create(h, i)
						}
					}
					ops.Add(1)
					if err != nil {
						failed.Add(1)
						failMu.Lock()
						if _, seen := firstErr[op]; !seen {
							firstErr[op] = err.Error()
						}
						failMu.Unlock()
					}
				}
			}(w)
		}
		wg.Wait()
	}

	churn(warm, 1)
	time.Sleep(5 * time.Second) // let the leader's plans for the last changes land
	base := c.usages(t)
	churn(churnFor/2, 2)
	mid := c.usages(t)
	churn(churnFor-churnFor/2, 3)
	time.Sleep(5 * time.Second)
	end := c.usages(t)
	time.Sleep(idleFor)
	idle := c.usages(t)

	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d churn operations failed; the first of each kind: %v", n, ops.Load(), firstErr)
	}
	termChanges, dbChecked := 0, false
	var grew usage // the largest growth from warm-up to the end of the churn, of any manager
	for i, h := range c.hosts {
		b, m, e, l := base[i], mid[i], end[i], idle[i]
		grew.goroutines = max(grew.goroutines, e.goroutines-b.goroutines)
		grew.fds = max(grew.fds, e.fds-b.fds)
		grew.rssKB = max(grew.rssKB, e.rssKB-b.rssKB)
		if e.goroutines > b.goroutines+max(25, b.goroutines/10) {
			t.Errorf("%s: goroutines %d after warm-up, %d after the churn", h.name, b.goroutines, e.goroutines)
		}
		if e.fds > b.fds+20 {
			t.Errorf("%s: file descriptors %d after warm-up, %d after the churn", h.name, b.fds, e.fds)
		}
		// The store holds the same 100 services throughout; the heap may
		// breathe with the garbage collector but must not follow the number
		// of operations.
		if e.rssKB > b.rssKB*3/2+32<<10 {
			t.Errorf("%s: RSS %d MiB after warm-up, %d MiB after the churn", h.name, b.rssKB>>10, e.rssKB>>10)
		}
		if m.commit >= compactedAfter {
			dbChecked = true
			if e.raftDB > m.raftDB*5/4 {
				t.Errorf("%s: raft.db grew from %d to %d bytes in the second half, with %d entries already compacted", h.name, m.raftDB, e.raftDB, m.commit)
			}
		}
		if l.term != e.term {
			termChanges++
			t.Errorf("%s: term %d → %d while the cluster was idle for %s", h.name, e.term, l.term, idleFor)
		}
	}
	entries := end[0].commit - base[0].commit
	dbText := fmt.Sprintf("raft.db not judged (index %d at mid-churn < %d, before compaction reuses it)", mid[0].commit, compactedAfter)
	if dbChecked {
		dbText = "raft.db flat after compaction"
	}
	summary("T6", "soak: 100 services churned", t.Failed(), "%d ops (%d failed) in %s, %d raft entries; h1 %s → %s; largest growth of a manager %+d goroutines, %+d fds, %+d MiB RSS; %s; %d term changes idle %s",
		ops.Load(), failed.Load(), churnFor, entries, base[0], end[0], grew.goroutines, grew.fds, grew.rssKB>>10, dbText, termChanges, idleFor)
}
