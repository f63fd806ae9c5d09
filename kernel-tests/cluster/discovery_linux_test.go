//go:build linux

package clustertest

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/kernel-tests/ktest"
)

var execSeq atomic.Int64

// exec runs the demo binary inside a task's container (the image has no
// shell) through h's containerd, as `docker exec` would.
func (h *host) exec(t *testing.T, task api.Task, args ...string) (string, error) {
	t.Helper()
	id := fmt.Sprintf("e2e-%d", execSeq.Add(1))
	full := append([]string{"--address", h.ctd.Socket, "-n", h.ctdNS, "tasks", "exec", "--exec-id", id, task.Status.ContainerID, "/app"}, args...)
	out, err := exec.Command("ctr", full...).CombinedOutput()
	return string(out), err
}

// TestServiceDiscovery is the PRD's story 2.2: another service reaches
// `web` by name and through its VIP, spread over the replicas, and a
// replica made unhealthy stops receiving new connections (how soon is logged).
func TestServiceDiscovery(t *testing.T) {
	ktest.Binary(t, "ctr")
	c := newCluster(t, 1)
	h := c.hosts[0]
	c.init(h)
	h.mustCLI("image", "load", "-i", c.image)
	h.mustCLI("service", "create", "web", "--image", demoRef, "--replicas", "3", "--port", "8080:80",
		"--health-http", "/healthz", "--health-interval", "1s", "--health-timeout", "1s", "--health-retries", "1", "--timeout", "2m")
	h.mustCLI("service", "create", "client", "--image", demoRef, "--replicas", "1", "--timeout", "2m")
	web := c.waitRunning(h, "web", 3, time.Minute, func(ts []api.Task) error {
		for _, tk := range ts {
			if tk.Status.Health != api.HealthHealthy {
				return fmt.Errorf("task %s is %s", short(tk.ID), tk.Status.Health)
			}
		}
		return nil
	})
	cl := c.waitRunning(h, "client", 1, time.Minute, nil)[0]
	svc, err := h.service("web")
	if err != nil {
		t.Fatal(err)
	}

	// DNS from inside a container, through its resolv.conf.
	out, err := h.exec(t, cl, "lookup", "web")
	if err != nil || strings.TrimSpace(out) != svc.Endpoint.VIP {
		t.Fatalf("lookup web from a container = %q, %v; want the VIP %s", out, err, svc.Endpoint.VIP)
	}
	out, err = h.exec(t, cl, "lookup", "tasks.web")
	if err != nil {
		t.Fatalf("lookup tasks.web: %v\n%s", err, out)
	}
	got := strings.Fields(out)
	var want []string
	for _, tk := range web {
		want = append(want, tk.Status.Addr)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("tasks.web = %v, want the task addresses %v", got, want)
	}

	get := func() (string, error) {
		body, err := h.exec(t, cl, "healthcheck", "http://web/")
		if err != nil {
			return "", fmt.Errorf("%v: %s", err, body)
		}
		r, err := parseDemo(body)
		return r.Hostname, err
	}
	seen := map[string]int{}
	for i := 0; i < 30; i++ {
		who, err := get()
		if err != nil {
			t.Fatalf("GET http://web/ from a container: %v", err)
		}
		seen[who]++
	}
	t.Logf("30 requests to http://web/ by name: %v", seen)
	if len(seen) != 3 {
		t.Fatalf("requests by name reached %d replicas, want all 3: %v", len(seen), seen)
	}

	// One replica fails its health check: soon no new connection reaches it.
	// How soon is measured and logged, not asserted (these machines are
	// noisy); 30 misses in a row by chance would be (2/3)^30 ≈ 5e-6.
	sick := web[0]
	if out, err := h.exec(t, sick, "touch", "/tmp/unhealthy"); err != nil {
		t.Fatalf("make %s unhealthy: %v\n%s", short(sick.ID), err, out)
	}
	made := time.Now()
	eventually(t, "30 new connections in a row miss the unhealthy replica", 60*time.Second, func() error {
		for i := 0; i < 30; i++ {
			who, err := get()
			if err != nil {
				return fmt.Errorf("GET after the replica became unhealthy: %v", err)
			}
			if who == sick.ID || strings.HasPrefix(sick.ID, who) || strings.HasPrefix(who, sick.ID[:12]) {
				return fmt.Errorf("request %d of 30 reached the unhealthy replica %s", i+1, short(sick.ID))
			}
		}
		return nil
	})
	t.Logf("measured: unhealthy replica out of the VIP's new connections %s after its check began failing", time.Since(made).Round(100*time.Millisecond))
	eventually(t, "service ps shows the replica unhealthy (or replaced for it)", 10*time.Second, func() error {
		ts, err := h.tasks("web")
		if err != nil {
			return err
		}
		for _, tk := range ts {
			if tk.ID == sick.ID && (tk.Status.Health == api.HealthUnhealthy || strings.Contains(tk.StopReason, "unhealthy")) {
				return nil
			}
		}
		return fmt.Errorf("not unhealthy yet")
	})

	// The replicas' logs, gathered from the node by the manager.
	logs := h.mustCLI("service", "logs", "--tail", "20", "web")
	for _, tk := range web {
		if !strings.Contains(logs, "as "+short(tk.ID)) {
			t.Errorf("service logs web has no start line of task %s:\n%s", short(tk.ID), tail(logs, 1500))
		}
	}
}
