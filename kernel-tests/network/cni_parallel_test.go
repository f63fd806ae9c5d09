//go:build linux

package networktest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/warrenhq/warren/cni"
	"github.com/warrenhq/warren/cni/ipam"
	"github.com/warrenhq/warren/kernel-tests/ktest"
)

// TestCNIParallelAdds starts several plugin processes at once against a node
// without a bridge yet: they race to create it and to lease addresses, and
// every container must end up with its own address and reach the others.
func TestCNIParallelAdds(t *testing.T) {
	ktest.Root(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin, conf := filepath.Join(dir, "bin"), filepath.Join(dir, "conf")
	if err := cni.InstallPlugin(bin, exe); err != nil {
		t.Fatal(err)
	}
	if err := cni.WriteConfList(conf, cni.NetConf{Bridge: shortTag("wbp"), Subnet: "10.42.8.0/24", DataDir: filepath.Join(dir, "ipam")}); err != nil {
		t.Fatal(err)
	}
	client := cni.NewClient(bin, conf)
	client.CacheDir = filepath.Join(dir, "cache")
	node := newNetns(t, "pnode")
	const n = 8
	ctrs := make([]string, n)
	for i := range ctrs {
		ctrs[i] = newNetns(t, fmt.Sprintf("p%d", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addrs := make([]netip.Addr, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range ctrs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = ns.WithNetNSPath(nsPath(node), func(ns.NetNS) (err error) {
				addrs[i], err = client.Add(ctx, fmt.Sprintf("par-%d", i), nsPath(ctrs[i]))
				return err
			})
		}(i)
	}
	wg.Wait()
	seen := map[netip.Addr]bool{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("ADD %d: %v", i, err)
		}
		if seen[addrs[i]] {
			t.Fatalf("address %s leased twice", addrs[i])
		}
		seen[addrs[i]] = true
	}
	for i := 1; i < n; i++ {
		srv := listenIn(t, ctrs[i], netip.AddrPortFrom(addrs[i], 0))
		eventually(t, fmt.Sprintf("container 0 -> %d", i), 10*time.Second, func() error { return dialFrom(ctrs[0], srv, "hi") })
	}

	// GC with half the containers: the rest lose their lease and host veth.
	// libcni DELs the attachments it has cached itself; drop its cache so
	// the plugin's own GC has to find the leaks (as after a runtime crash).
	if err := os.RemoveAll(client.CacheDir); err != nil {
		t.Fatal(err)
	}
	var keep []string
	for i := 0; i < n/2; i++ {
		keep = append(keep, fmt.Sprintf("par-%d", i))
	}
	if err := ns.WithNetNSPath(nsPath(node), func(ns.NetNS) error { return client.GC(ctx, keep) }); err != nil {
		t.Fatalf("GC: %v", err)
	}
	store, _ := ipam.Open(filepath.Join(dir, "ipam"), netip.MustParsePrefix("10.42.8.0/24"))
	p, err := store.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Leases) != n/2 {
		t.Fatalf("%d leases after GC, want %d", len(p.Leases), n/2)
	}
	for i := 0; i < n; i++ {
		_, held, _ := store.Lookup(fmt.Sprintf("par-%d", i), "eth0")
		if held != (i < n/2) {
			t.Fatalf("container %d: lease held = %v after GC", i, held)
		}
	}
	if out := inNS(t, node, "ip", "-o", "link", "show", "type", "veth"); strings.Count(out, "\n") != n/2 {
		t.Fatalf("host veths after GC:\n%s", out)
	}
}
