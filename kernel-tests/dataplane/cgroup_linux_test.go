package dataplanetest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/warrenhq/warren/kernel-tests/ktest"
)

var cgMu sync.Mutex

// newCgroup creates a cgroup v2 directory unique to this run and removes it
// at the end of t (after moving the test process out).
func newCgroup(t *testing.T, tag string) string {
	t.Helper()
	dir := filepath.Join(ktest.Cgroup2(t), fmt.Sprintf("warren-kt-%s-%d", tag, os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
		t.Fatalf("create cgroup: %v", err)
	}
	t.Cleanup(func() {
		leaveCgroup(t)
		if err := os.Remove(dir); err != nil {
			t.Errorf("remove cgroup %s: %v", dir, err)
		}
	})
	return dir
}

// homeCgroup is where the test process started, read before any test moves
// it; newCgroup has already failed the test when there is no cgroup2.
var homeCgroup, _ = ktest.OwnCgroup2()

// enterCgroup moves the whole test process (every thread) into dir, so its
// sockets are in the dataplane's scope.
func enterCgroup(t *testing.T, dir string) {
	t.Helper()
	cgMu.Lock()
	defer cgMu.Unlock()
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(fmt.Sprint(os.Getpid())), 0); err != nil {
		t.Fatalf("enter cgroup %s: %v", dir, err)
	}
}

func leaveCgroup(t *testing.T) {
	cgMu.Lock()
	defer cgMu.Unlock()
	if err := os.WriteFile(filepath.Join(homeCgroup, "cgroup.procs"), []byte(fmt.Sprint(os.Getpid())), 0); err != nil {
		t.Errorf("leave cgroup: %v", err)
	}
}

var (
	bpffsOnce sync.Once
	bpffsDir  string
	bpffsErr  error
)

// pinDir returns a bpffs directory unique to this run and test, unpinned at
// the end of t. The run mounts its own bpffs instance (TestMain unmounts
// it), so it neither needs nor touches the host's /sys/fs/bpf.
func pinDir(t *testing.T, name string) string {
	t.Helper()
	bpffsOnce.Do(func() {
		bpffsDir, bpffsErr = os.MkdirTemp("", fmt.Sprintf("warren-kt-bpffs-%d-", os.Getpid()))
		if bpffsErr == nil {
			bpffsErr = unix.Mount("bpf", bpffsDir, "bpf", 0, "mode=0700")
		}
	})
	if bpffsErr != nil {
		t.Fatalf("kernel test requirement missing: bpffs mount: %v", bpffsErr)
	}
	clean := strings.NewReplacer("/", "_", " ", "_").Replace(name)
	return filepath.Join(bpffsDir, "warren", clean)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bpffsDir != "" {
		unix.Unmount(bpffsDir, 0)
		os.Remove(bpffsDir)
	}
	os.Exit(code)
}
