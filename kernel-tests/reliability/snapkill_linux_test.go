//go:build linux

package reliability

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// snapshotFlags make every manager snapshot about every half second under
// the workload: raft checks every 200–400 ms whether 8 entries accumulated.
var snapshotFlags = []string{"--raft-snapshot-threshold", "8", "--raft-snapshot-interval", "200ms"}

// snapshotsDir is where hashicorp/raft's FileSnapshotStore writes: each
// snapshot is <dir>/<id>.tmp while raft writes (or receives) it, renamed to
// <dir>/<id> by the sink's Close (file_snapshot.go, Create and Close).
func (h *host) snapshotsDir() string { return filepath.Join(h.dataDir, "raft", "snapshots") }

// unfinished lists the snapshot dirs still being written.
func (h *host) unfinished() []string {
	es, _ := os.ReadDir(h.snapshotsDir())
	var out []string
	for _, e := range es {
		if e.IsDir() && strings.HasSuffix(e.Name(), ".tmp") {
			out = append(out, e.Name())
		}
	}
	return out
}

// snapshotWatch reports, through inotify, the moment any manager creates
// a <id>.tmp snapshot dir: polling would see only the rare snapshot that
// takes longer than its interval.
type snapshotWatch struct {
	fd    int
	hosts map[int]*host // watch descriptor -> host
}

func watchSnapshots(t *testing.T, hosts []*host) *snapshotWatch {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Fatalf("inotify: %v", err)
	}
	w := &snapshotWatch{fd: fd, hosts: map[int]*host{}}
	for _, h := range hosts {
		wd, err := unix.InotifyAddWatch(fd, h.snapshotsDir(), unix.IN_CREATE|unix.IN_ONLYDIR)
		if err != nil {
			unix.Close(fd)
			t.Fatalf("watch %s: %v", h.snapshotsDir(), err)
		}
		w.hosts[wd] = h
	}
	return w
}

func (w *snapshotWatch) close() { unix.Close(w.fd) }

// next blocks until a snapshot begins somewhere or within passes, and then
// calls onStart at once — before anything else — with the host.
func (w *snapshotWatch) next(within time.Duration, onStart func(*host)) (*host, error) {
	deadline := time.Now().Add(within)
	buf := make([]byte, 64<<10)
	for time.Now().Before(deadline) {
		pfd := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, 200)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return nil, fmt.Errorf("poll inotify: %w", err)
		}
		if n <= 0 {
			continue
		}
		got, err := unix.Read(w.fd, buf)
		if err != nil {
			return nil, fmt.Errorf("read inotify: %w", err)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= got; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := string(buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)])
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if h := w.hosts[int(ev.Wd)]; h != nil && strings.HasSuffix(strings.TrimRight(name, "\x00"), ".tmp") {
				onStart(h)
				return h, nil
			}
		}
	}
	return nil, fmt.Errorf("no manager began a snapshot within %s", within)
}

// killDelays are the offsets, after a snapshot dir appears, at which the
// rounds kill.
var killDelays = []time.Duration{0, 5 * time.Millisecond, 500 * time.Microsecond, 10 * time.Millisecond, 2 * time.Millisecond, 20 * time.Millisecond, time.Millisecond}

// killAllNow SIGKILLs every manager's process group with no wait between
// them, then reaps them.
func killAllNow(hosts []*host) {
	for _, h := range hosts {
		if pid := h.pid(); pid > 0 {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Add(1)
		go func(h *host) { defer wg.Done(); h.stop(syscall.SIGKILL) }(h)
	}
	wg.Wait()
}

// killMidSnapshot (T3): the managers restart snapshotting every half
// second; each round waits for a snapshot to begin and SIGKILLs all three
// at that moment. A kill landed mid-snapshot when the <id>.tmp dir
// outlived the processes. After each restart every manager must start (a
// half-written snapshot is not restored, nor refused), and the .tmp dirs
// are gone; at the end no acknowledged write is lost and the history is
// linearizable. Rounds continue, bounded, until at least one kill landed.
func killMidSnapshot(t *testing.T, c *cluster, a *apiClient, nodes []string) {
	killAllNow(c.hosts)
	for _, h := range c.hosts {
		h.start(append(append([]string(nil), h.args...), snapshotFlags...)...)
	}
	c.leaderHost(t, 90*time.Second)
	w := newWorkload(a, nodes)
	w.start(3, 1, "t3s")
	t.Cleanup(w.halt)
	rounds, bound := profile(2, 10), profile(8, 30)
	landed, kills := 0, 0
	var writing []string // the state file's size, for kills that landed while raft wrote it
	var back []time.Duration
	for kills < rounds || landed == 0 && kills < bound {
		w.waitAcks(t, 10, 90*time.Second)
		sw := watchSnapshots(t, c.hosts)
		var hit *host
		var tmps []string
		// The kill comes at a different point of the snapshot each round:
		// at its first moment, or a little into (or past) its writing.
		delay := killDelays[kills%len(killDelays)]
		_, err := sw.next(30*time.Second, func(h *host) {
			time.Sleep(delay)
			killAllNow(c.hosts)
			hit, tmps = h, h.unfinished()
		})
		sw.close()
		if err != nil {
			t.Fatal(err)
		}
		kills++
		if len(tmps) > 0 {
			landed++
			// How far the snapshot got: the bytes of its state file.
			if fi, err := os.Stat(filepath.Join(hit.snapshotsDir(), tmps[0], "state.bin")); err == nil {
				writing = append(writing, fmt.Sprintf("%d B", fi.Size()))
			}
		}
		t.Logf("kill %d, %s after %s began a snapshot; unfinished after the kill: %v", kills, delay, hit.name, tmps)
		down := time.Now()
		for _, h := range c.hosts {
			h.start(h.args...)
		}
		c.leaderHost(t, 90*time.Second)
		back = append(back, time.Since(down))
		for _, h := range c.hosts {
			if !h.running() {
				t.Fatalf("%s did not come back after a kill mid-snapshot (log %s)", h.name, h.logPath)
			}
		}
		eventually(t, "the unfinished snapshot dirs removed at start", 30*time.Second, func() error {
			left := hit.unfinished()
			for _, name := range left {
				for _, was := range tmps {
					if name == was {
						return fmt.Errorf("%s still holds %s", hit.name, name)
					}
				}
			}
			return nil
		})
	}
	if len(writing) == 0 {
		writing = []string{"none"}
	}
	if landed == 0 {
		t.Errorf("none of %d kills landed while a snapshot was being written: the fault was not injected", kills)
	}
	w.waitAcks(t, 5, 90*time.Second)
	w.halt()
	lost, lin := w.check(t)
	summary("T3", "kill -9 all during a snapshot", t.Failed(), "%d kills, %d landed mid-snapshot (the .tmp outlived the process), %d of them while raft wrote the state file (bytes written: %s), all restarted; %s; lost %d; %s; restart to leader p50 %s max %s",
		kills, landed, len(writing), strings.Join(writing, ", "), w.figures(), lost, linText(lin), percentile(back, 0.5).Round(time.Millisecond), percentile(back, 1).Round(time.Millisecond))
}
