//go:build linux

package reliability

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestFullDisk (T4): a manager whose data dir is a small tmpfs runs out of
// space. Writes must fail with an error that says so, the manager must keep
// running and serving reads, writes must work again once space returns, and
// every write acknowledged before, during and after survives a restart.
func TestFullDisk(t *testing.T) {
	c := newCluster(t, 1)
	h := c.hosts[0]
	if err := os.MkdirAll(h.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", h.dataDir, "tmpfs", 0, "size=48m,mode=0700"); err != nil {
		t.Fatalf("mount a 48 MiB tmpfs on %s: %v", h.dataDir, err)
	}
	// Lazy: this clean-up runs before the one that stops warren.
	t.Cleanup(func() { _ = unix.Unmount(h.dataDir, unix.MNT_DETACH) })
	c.init(h)
	id := h.nodeID(t)

	var acked []string
	write := func(key string) error {
		_, err := h.cli("node", "update", "--label-add", key+"=1", id)
		if err == nil {
			acked = append(acked, key)
		}
		return err
	}
	for i := 0; i < 5; i++ {
		if err := write(fmt.Sprintf("before-%d", i)); err != nil {
			t.Fatal(err)
		}
	}

	filler := filepath.Join(h.dataDir, "filler")
	fill(t, filler)
	var fullErr error
	refused := 0
	for i := 0; i < 5; i++ {
		if err := write(fmt.Sprintf("full-%d", i)); err != nil {
			refused++
			fullErr = err
		}
	}
	if fullErr == nil {
		t.Fatal("every write succeeded on a full filesystem: the fault was not injected")
	}
	msg := fullErr.Error()
	t.Logf("the last write refused on the full disk: %s", msg)
	clear := strings.Contains(msg, "no space left on device")
	if !clear {
		t.Errorf("a write on a full disk failed without saying why:\n%s", msg)
	}
	if !h.running() {
		t.Fatalf("warren exited on a full disk (log %s)", h.logPath)
	}
	if _, err := h.cli("node", "ls", "--stale"); err != nil {
		t.Errorf("reads on a full disk: %v", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	eventually(t, "writes work again once space returns", 60*time.Second, func() error {
		return write(fmt.Sprintf("after-%d", len(acked)))
	})
	recovered := time.Since(freed)
	for i := 0; i < 5; i++ {
		if err := write(fmt.Sprintf("after2-%d", i)); err != nil {
			t.Fatal(err)
		}
	}

	h.stop(syscall.SIGKILL)
	h.start(h.args...)
	lost := 0
	eventually(t, "every acknowledged write after a restart", 90*time.Second, func() error {
		n, err := h.nodeByID(id)
		if err != nil {
			return err
		}
		lost = 0
		for _, k := range acked {
			if n[k] != "1" {
				lost++
			}
		}
		if lost > 0 {
			return errStop(fmt.Errorf("%d of %d acknowledged labels missing after restart", lost, len(acked)))
		}
		return nil
	})
	summary("T4", "raft store on a full filesystem", t.Failed(), "%d of 5 writes refused while full (clear error: %v), running and reading: %v, writes back %s after space returned, %d acked writes, lost %d after kill -9 and restart",
		refused, clear, h.running(), recovered.Round(time.Millisecond), len(acked), lost)
}

// fill writes zeros to path until the filesystem is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			t.Fatalf("fill %s: %v", path, err)
		}
	}
	for _, n := range []int{64 << 10, 4 << 10, 512, 1} { // the last partial pages
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
}

// nodeByID returns a node's labels from this host's manager.
func (h *host) nodeByID(id string) (map[string]string, error) {
	var ns []struct {
		ID   string `json:"id"`
		Spec struct {
			Labels map[string]string `json:"labels"`
		} `json:"spec"`
	}
	if err := h.cliJSON(&ns, "node", "ls"); err != nil {
		return nil, err
	}
	for _, n := range ns {
		if n.ID == id {
			return n.Spec.Labels, nil
		}
	}
	return nil, fmt.Errorf("node %s not listed", id)
}
