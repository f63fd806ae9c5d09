package registrytest

import (
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenhq/warren/kernel-tests/ktest"
)

func demoImage(t *testing.T) string {
	t.Helper()
	p := os.Getenv("WARREN_DEMO_IMAGE")
	if p == "" {
		t.Fatal("kernel test requirement missing: WARREN_DEMO_IMAGE (make demo-image; make kernel-test sets it)")
	}
	ktest.File(t, p, "the demo image archive")
	return p
}

var seq atomic.Int32

func netns(t *testing.T) string {
	t.Helper()
	name := "wkr-" + strconv.Itoa(os.Getpid()) + "-" + strconv.Itoa(int(seq.Add(1)))
	ktest.Run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { ktest.RunQuiet("ip", "netns", "del", name) })
	ktest.Run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// TestRegistryFixture: the registry serves TLS from the test CA, refuses
// anonymous and wrong credentials, takes a push with the right ones, and
// its access log counts what it was asked.
func TestRegistryFixture(t *testing.T) {
	ktest.Root(t)
	img := demoImage(t)
	ip := "127.0.0.1"
	r := Start(t, Options{NetNS: netns(t), IP: ip})

	c := r.HTTPClient()
	resp, err := c.Get(r.URL() + "/v2/")
	if err != nil {
		t.Fatalf("GET /v2/ over TLS with the test CA: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous GET /v2/ = %d, want 401", resp.StatusCode)
	}

	start := time.Now()
	d, err := r.Push(img, "demo:v1")
	if err != nil {
		t.Fatal(err)
	}
	pushed := time.Since(start)
	got, err := r.Head("demo:v1")
	if err != nil || got != d {
		t.Fatalf("head demo:v1 = %q, %v; want the pushed %s", got, err, d)
	}

	if _, err := r.HeadAs(r.User, "wrong", "demo:v1"); err == nil || !strings.Contains(err.Error(), "401") && !strings.Contains(strings.ToLower(err.Error()), "unauthorized") {
		t.Fatalf("head with a wrong password: %v, want 401 unauthorized", err)
	}
	n401 := r.Requests("/v2/demo/manifests/v1", http.StatusUnauthorized)
	if n401 == 0 {
		t.Fatalf("access log counted no 401 for the manifest:\n%s", r.Log())
	}

	// A registry restarted on its data keeps the image (mid-pull outages
	// restart it the same way).
	r.Stop()
	r.Start()
	if got, err := r.Head("demo:v1"); err != nil || got != d {
		t.Fatalf("after restart head demo:v1 = %q, %v", got, err)
	}
	t.Logf("measured: push of the demo image %v, digest %s, %d manifest requests answered 401", pushed.Round(time.Millisecond), d, n401)
}
