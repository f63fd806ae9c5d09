//go:build linux

package runtimetest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/warrenhq/warren/controlplane/api"
	wrt "github.com/warrenhq/warren/runtime"
	ctrd "github.com/warrenhq/warren/runtime/containerd"
)

// TestTaskLogger runs tasks with the binary log driver (this test binary
// re-executed by the shim): lines are timestamped and tagged, the logger
// lives under the shim (so it outlives the agent), and following the log
// sees the output of a restarted process.
func TestTaskLogger(t *testing.T) {
	f := newFixture(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ex, err := ctrd.New(ctrd.Options{
		Address: f.ctd.Socket, Namespace: f.ns, CgroupParent: f.parent, NodeID: "node-kt",
		Network: f.net, DisablePull: true, LoggerBinary: self, Logger: zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ex.Close() })
	w := f.worker(ex)
	ctx := context.Background()
	tk := demoTask("kt-log", nil)
	if err := w.Set(ctx, []api.Task{tk}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Set(context.Background(), nil) })
	st := waitFor(t, w, tk.ID, 30*time.Second, "running", func(s api.TaskStatus) bool { return s.State == api.TaskRunning && s.PID > 0 })

	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rc, err := w.Logs(lctx, tk.ID, wrt.LogOptions{Follow: true, Timestamps: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(rc)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	startLine := regexp.MustCompile(fmt.Sprintf(`^\d{4}-\d\d-\d\dT[0-9:.]+Z \d{4}/\d\d/\d\d [0-9:]+ demo-server v1 on %d`, demoPort))
	expect := func() {
		t.Helper()
		timeout := time.After(15 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatal("log stream ended")
				}
				if startLine.MatchString(l) {
					return
				}
			case <-timeout:
				t.Fatal("timestamped start line not seen")
			}
		}
	}
	expect()
	raw, err := os.ReadFile(w.LogPath(tk.ID))
	if err != nil || !strings.Contains(string(raw), "Z stderr ") {
		t.Fatalf("log file lacks stream tags: %q %v", raw, err)
	}

	// The logger is the shim's child, not the agent's.
	lp := loggerPID(t, w.LogPath(tk.ID))
	ppid := parentOf(t, lp)
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", ppid)); !strings.HasPrefix(string(comm), "containerd-shim") {
		t.Fatalf("logger %d has parent %d (%s), want the shim", lp, ppid, strings.TrimSpace(string(comm)))
	}

	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, w, tk.ID, 20*time.Second, "restarted", func(s api.TaskStatus) bool {
		return s.State == api.TaskRunning && s.PID != st.PID && s.PID > 0
	})
	expect() // the new process's start line, through a new logger
}

func loggerPID(t *testing.T, logPath string) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && strings.Contains(string(b), "--warren-task-logger") && strings.Contains(string(b), logPath) {
			return pid
		}
	}
	t.Fatalf("no logger process for %s", logPath)
	return 0
}

func parentOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the parenthesised command: state ppid ...
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	var state string
	var ppid int
	if _, err := fmt.Sscanf(rest, "%s %d", &state, &ppid); err != nil {
		t.Fatal(err)
	}
	return ppid
}
