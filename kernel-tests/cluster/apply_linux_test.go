//go:build linux

package clustertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/kernel-tests/ktest"
)

func taskLabel(t api.Task) string { return fmt.Sprintf("%s.%d", t.ServiceName, t.Slot) }

// applyCLI runs the CLI and returns stdout, stderr and the exit status.
func applyCLI(h *host, dir string, args ...string) (string, string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.c.bin, append([]string{"--data-dir", h.dataDir}, args...)...)
	cmd.Dir = dir
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
	}
	return stdout.String(), stderr.String(), code
}

// The app's health check fetches http://db/healthz from inside its task:
// it passes only if "db", the Compose name, resolves to the stack's db.
const shopCompose = `
services:
  db:
    image: warren/demo:v1
    expose: ["80"]
    healthcheck:
      test: ["CMD", "/app", "healthcheck"]
      interval: 1s
      timeout: 1s
      retries: 2
  app:
    image: warren/demo:${TAG:-v1}
    environment:
      COLOUR: ${COLOUR:-blue}
    deploy:
      replicas: 2
      update_config: {order: start-first}
    depends_on:
      db:
        condition: service_healthy
    ports: ["18080:80"]
    healthcheck:
      test: ["CMD", "/app", "healthcheck", "http://db/healthz"]
      interval: 1s
      timeout: 1s
      retries: 2
`

// TestApplyComposeStack deploys a Compose file on two nodes: depends_on
// service_healthy orders the creations, the app reaches db by its Compose
// name, re-applying changes nothing (no new spec version), a changed file
// updates only what changed (a new image rolls with no failed request), a stack that cannot converge exits 3 naming
// the service, and stack rm removes the stack's services and nothing else.
func TestApplyComposeStack(t *testing.T) {
	ktest.Binary(t, "ctr")
	c := newCluster(t, 2)
	demoV2 := filepath.Join(filepath.Dir(c.image), "demo-v2.tar")
	h1, h2 := c.hosts[0], c.hosts[1]
	c.init(h1)
	c.join(h2, h1, strings.TrimSpace(h1.mustCLI("cluster", "join-token", "worker", "-q")))
	h1.mustCLI("image", "load", "-i", c.image)
	h1.mustCLI("service", "create", "keep", "--image", demoRef, "--replicas", "1", "--timeout", "2m")

	dir := filepath.Join(c.dir, "shop")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(file, []byte(shopCompose), 0o644); err != nil {
		t.Fatal(err)
	}

	out, stderr, code := applyCLI(h1, dir, "apply", "-f", "compose.yaml", "--dry-run")
	if code != 0 || !lineHas(out, "create", "shop_db") || !lineHas(out, "create", "shop_app") {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, out, stderr)
	}
	if _, err := h1.service("shop_db"); err == nil {
		t.Fatal("--dry-run created shop_db")
	}

	begin := time.Now()
	out, stderr, code = applyCLI(h1, dir, "apply", "-f", "compose.yaml", "--timeout", "3m")
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", code, out, stderr)
	}
	t.Logf("measured: apply of a 2-service stack (db healthy, then app 2/2 healthy): %s", time.Since(begin).Round(time.Millisecond))
	// app is created only after db reported healthy.
	healthyAt, createdAt := strings.Index(stderr, "shop_db: 1/1 running, 1 healthy"), strings.Index(stderr, "shop_app: created")
	if healthyAt < 0 || createdAt < 0 || createdAt < healthyAt {
		t.Errorf("shop_app was not created after shop_db became healthy:\n%s", stderr)
	}
	db, err := h1.service("shop_db")
	if err != nil {
		t.Fatal(err)
	}
	app, err := h1.service("shop_app")
	if err != nil {
		t.Fatal(err)
	}
	if app.Spec.Labels["com.warren.stack"] != "shop" || db.Spec.Labels["com.warren.stack.service"] != "db" {
		t.Errorf("labels: app %v, db %v", app.Spec.Labels, db.Spec.Labels)
	}
	// Healthy app tasks reached http://db/ by the Compose name.
	tasks := c.waitRunning(h1, "shop_app", 2, time.Minute, func(ts []api.Task) error {
		for _, tk := range ts {
			if tk.Status.Health != api.HealthHealthy {
				return fmt.Errorf("task %s %s", short(tk.ID), tk.Status.Health)
			}
		}
		return nil
	})
	nodes := map[string]bool{}
	for _, tk := range tasks {
		nodes[tk.NodeID] = true
	}
	t.Logf("app tasks on %d node(s), each healthy through http://db/", len(nodes))
	for _, tk := range tasks {
		out, err := c.hostOfNode(t, tk.NodeID).exec(t, tk, "lookup", "db")
		if err != nil || strings.TrimSpace(out) != db.Endpoint.VIP {
			t.Errorf("lookup db in %s = %q, %v; want shop_db's VIP %s", taskLabel(tk), out, err, db.Endpoint.VIP)
		}
	}
	// Outside the stack the Compose name means nothing.
	keep := c.waitRunning(h1, "keep", 1, time.Minute, nil)[0]
	if out, err := c.hostOfNode(t, keep.NodeID).exec(t, keep, "lookup", "db"); err == nil && strings.TrimSpace(out) == db.Endpoint.VIP {
		t.Errorf("a task outside the stack resolved db to shop_db")
	}

	// Re-applying the same file sends nothing.
	out, stderr, code = applyCLI(h1, dir, "apply", "-f", "compose.yaml")
	if code != 0 || !lineHas(out, "unchanged", "shop_db") || !lineHas(out, "unchanged", "shop_app") {
		t.Fatalf("re-apply: exit %d\n%s\n%s", code, out, stderr)
	}
	for _, s := range []api.Service{db, app} {
		now, err := h1.service(s.Spec.Name)
		if err != nil {
			t.Fatal(err)
		}
		if now.SpecVersion != s.SpecVersion || now.Meta.Version != s.Meta.Version {
			t.Errorf("%s: re-apply moved spec version %d → %d (meta %d → %d)", s.Spec.Name, s.SpecVersion, now.SpecVersion, s.Meta.Version, now.Meta.Version)
		}
	}

	// New variables update app, and only app, by its rolling update: the
	// published port answers every request meanwhile.
	if _, err := os.Stat(demoV2); err != nil {
		t.Fatalf("%v (make demo-image builds it)", err)
	}
	h1.mustCLI("image", "load", "-i", demoV2)
	stop := make(chan struct{})
	type result struct {
		n       int
		errs    []error
		version string
	}
	during := make(chan result)
	go func() {
		var r result
		for {
			select {
			case <-stop:
				during <- r
				return
			default:
			}
			body, err := httpGet(h1.nsPath(), "http://"+h2.ip+":18080/")
			if err == nil {
				var d demoReply
				if d, err = parseDemo(body); err == nil {
					r.version = d.Version
				}
			}
			r.n++
			if err != nil {
				r.errs = append(r.errs, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	cmd := exec.Command(h1.c.bin, "--data-dir", h1.dataDir, "apply", "-f", "compose.yaml")
	cmd.Dir, cmd.Env = dir, append(os.Environ(), "COLOUR=green", "TAG=v2")
	b, err := cmd.CombinedOutput()
	time.Sleep(time.Second) // a few requests after the rollout, to see v2 answer
	close(stop)
	r := <-during
	if err != nil || !lineHas(string(b), "update", "shop_app") || !lineHas(string(b), "unchanged", "shop_db") ||
		!strings.Contains(string(b), `task.container.env[0]: "COLOUR=blue" → "COLOUR=green"`) ||
		!strings.Contains(string(b), `task.container.image: "warren/demo:v1" → "warren/demo:v2"`) {
		t.Fatalf("apply with COLOUR=green TAG=v2: %v\n%s", err, b)
	}
	t.Logf("measured: rolling update through apply: %d requests to the published port, %d failed; last answer from %s", r.n, len(r.errs), r.version)
	if len(r.errs) > 0 {
		t.Errorf("%d of %d requests failed during the rollout; first: %v", len(r.errs), r.n, r.errs[0])
	}
	if r.version != "v2" {
		t.Errorf("after the rollout the published port answers %q, want v2", r.version)
	}
	if now, _ := h1.service("shop_app"); now.SpecVersion != app.SpecVersion+1 {
		t.Errorf("shop_app spec version %d, want %d (one update for both changes)", now.SpecVersion, app.SpecVersion+1)
	}
	if now, _ := h1.service("shop_db"); now.SpecVersion != db.SpecVersion {
		t.Errorf("shop_db was updated too (spec version %d)", now.SpecVersion)
	}

	out = h1.mustCLI("stack", "ls")
	if !lineHas(out, "shop", "2") {
		t.Errorf("stack ls:\n%s", out)
	}
	out = h1.mustCLI("stack", "ps", "shop")
	if !strings.Contains(out, "shop_app.1") || !strings.Contains(out, "shop_db.1") {
		t.Errorf("stack ps:\n%s", out)
	}

	// A stack that cannot converge: exit 3 with the service and the reason.
	bad := filepath.Join(c.dir, "bad")
	_ = os.MkdirAll(bad, 0o755)
	_ = os.WriteFile(filepath.Join(bad, "compose.yaml"), []byte(`
services:
  sick:
    image: warren/demo:v1
    healthcheck: {test: ["CMD", "/app", "healthcheck", "http://127.0.0.1:1/"], interval: 1s, timeout: 1s, retries: 1}
  after:
    image: warren/demo:v1
    depends_on: {sick: {condition: service_healthy}}
`), 0o644)
	out, stderr, code = applyCLI(h1, bad, "apply", "-f", "compose.yaml", "--timeout", "20s")
	if code != 3 || !strings.Contains(stderr, "service bad_sick did not converge within 20s") {
		t.Errorf("unconvergeable stack: exit %d\n%s\n%s", code, out, stderr)
	}
	if _, err := h1.service("bad_after"); err == nil {
		t.Error("bad_after was created although bad_sick never became healthy")
	}

	// stack rm removes exactly the stack's services.
	out = h1.mustCLI("stack", "rm", "shop", "bad")
	if !strings.Contains(out, "shop_app") || !strings.Contains(out, "shop_db") || !strings.Contains(out, "bad_sick") {
		t.Errorf("stack rm:\n%s", out)
	}
	var svcs []api.Service
	if err := h1.cliJSON(&svcs, "service", "ls"); err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 1 || svcs[0].Spec.Name != "keep" {
		var names []string
		for _, s := range svcs {
			names = append(names, s.Spec.Name)
		}
		t.Errorf("after stack rm: services %v, want only keep", names)
	}
}
