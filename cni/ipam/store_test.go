package ipam

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
)

// The test binary doubles as a concurrent IPAM client: TestMain dispatches on
// an environment variable so the multi-process test runs real processes that
// contend for the same lock file.
func TestMain(m *testing.M) {
	if dir := os.Getenv("WARREN_IPAM_CHILD_DIR"); dir != "" {
		os.Exit(child(dir, os.Getenv("WARREN_IPAM_CHILD_ID")))
	}
	os.Exit(m.Run())
}

const perWorker = 10

func child(dir, id string) int {
	s, err := Open(dir, netip.MustParsePrefix("10.42.9.0/24"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for i := 0; i < perWorker; i++ {
		if _, err := s.Allocate("p"+id+"-"+strconv.Itoa(i), "eth0"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

func TestStorePersistsAndReleases(t *testing.T) {
	dir := t.TempDir()
	subnet := netip.MustParsePrefix("10.42.3.0/24")
	s, err := Open(dir, subnet)
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Allocate("c1", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	// A second process (here: a second Store) sees the lease.
	s2, _ := Open(dir, subnet)
	b, err := s2.Allocate("c1", "eth0")
	if err != nil || a != b {
		t.Fatalf("re-allocate = %s, %v; want %s", b, err, a)
	}
	if got, ok, _ := s2.Lookup("c1", "eth0"); !ok || got != a {
		t.Fatalf("lookup = %s %v", got, ok)
	}
	if err := s2.Release("c1", "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := s2.Release("c1", "eth0"); err != nil {
		t.Fatalf("second release: %v", err)
	}
	if _, ok, _ := s.Lookup("c1", "eth0"); ok {
		t.Fatal("lease survived release")
	}
	// A state file for another subnet under the same name is refused.
	other, _ := Open(dir, netip.MustParsePrefix("10.42.4.0/24"))
	if err := os.WriteFile(other.Path(), []byte(`{"subnet":"10.42.3.0/24","leases":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Allocate("x", "eth0"); err == nil {
		t.Fatal("allocate from a state file of another subnet succeeded")
	}
}

func checkUnique(t *testing.T, s *Store, want int) {
	t.Helper()
	p, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Leases) != want {
		t.Fatalf("leases = %d, want %d (lost updates)", len(p.Leases), want)
	}
	owners := map[Owner]bool{}
	for a, o := range p.Leases {
		if p.Reserved(a) || !p.Subnet.Contains(a) {
			t.Fatalf("leased reserved or foreign address %s", a)
		}
		if owners[o] {
			t.Fatalf("owner %v holds two addresses", o)
		}
		owners[o] = true
	}
}

func TestStoreConcurrentGoroutines(t *testing.T) {
	dir := t.TempDir()
	subnet := netip.MustParsePrefix("10.42.9.0/24")
	const workers = 16
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	addrs := make(chan netip.Addr, workers*perWorker)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			s, err := Open(dir, subnet)
			if err != nil {
				errs <- err
				return
			}
			for i := 0; i < perWorker; i++ {
				a, err := s.Allocate(fmt.Sprintf("g%d-%d", w, i), "eth0")
				if err != nil {
					errs <- err
					return
				}
				addrs <- a
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	close(addrs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[netip.Addr]bool{}
	for a := range addrs {
		if seen[a] {
			t.Fatalf("address %s handed out twice", a)
		}
		seen[a] = true
	}
	s, _ := Open(dir, subnet)
	checkUnique(t, s, workers*perWorker)
}

func TestStoreConcurrentProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	const procs = 8
	cmds := make([]*exec.Cmd, procs)
	for i := range cmds {
		c := exec.Command(exe)
		c.Env = append(os.Environ(), "WARREN_IPAM_CHILD_DIR="+dir, "WARREN_IPAM_CHILD_ID="+strconv.Itoa(i))
		c.Stderr = os.Stderr
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = c
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("child %d: %v", i, err)
		}
	}
	s, _ := Open(dir, netip.MustParsePrefix("10.42.9.0/24"))
	checkUnique(t, s, procs*perWorker)
}
