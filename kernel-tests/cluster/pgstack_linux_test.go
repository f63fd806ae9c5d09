//go:build linux

package clustertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/kernel-tests/ktest"
)

// rowReply is demo-rows' answer.
type rowReply struct {
	ID       int64  `json:"id"`
	Body     string `json:"body"`
	Hostname string `json:"hostname"`
	Version  string `json:"version"`
}

// rowsCall sends one request to demo-rows through nginx, from inside a
// host's network namespace, on a new connection.
func rowsCall(nsPath, method, url, body string) (rowReply, error) {
	tr := &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var conn net.Conn
			err := ns.WithNetNSPath(nsPath, func(ns.NetNS) error {
				d := net.Dialer{Timeout: 2 * time.Second}
				var err error
				conn, err = d.DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		},
	}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return rowReply{}, err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return rowReply{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return rowReply{}, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(b)))
	}
	var r rowReply
	if err := json.Unmarshal(b, &r); err != nil {
		return rowReply{}, fmt.Errorf("%s %s: %w: %q", method, url, err, b)
	}
	return r, nil
}

// writeAndRead stores a row through the published port and reads it back.
func writeAndRead(nsPath, base, body string) (rowReply, error) {
	w, err := rowsCall(nsPath, http.MethodPost, base+"/rows", body)
	if err != nil {
		return w, err
	}
	r, err := rowsCall(nsPath, http.MethodGet, fmt.Sprintf("%s/rows/%d", base, w.ID), "")
	if err != nil {
		return r, err
	}
	if r.Body != body {
		return r, fmt.Errorf("row %d reads %q, wrote %q", w.ID, r.Body, body)
	}
	return r, nil
}

type clusterObjects struct {
	services, secrets, configs, volumes []string
}

func (h *host) objects(t *testing.T) clusterObjects {
	t.Helper()
	var o clusterObjects
	var svcs []api.Service
	if err := h.cliJSON(&svcs, "service", "ls"); err != nil {
		t.Fatal(err)
	}
	for _, s := range svcs {
		o.services = append(o.services, s.Spec.Name)
	}
	for _, kind := range []string{"secret", "config"} {
		var xs []client.SecretInfo
		if err := h.cliJSON(&xs, kind, "ls"); err != nil {
			t.Fatal(err)
		}
		for _, x := range xs {
			if kind == "secret" {
				o.secrets = append(o.secrets, x.Spec.Name)
			} else {
				o.configs = append(o.configs, x.Spec.Name)
			}
		}
	}
	var vols []api.Volume
	if err := h.cliJSON(&vols, "volume", "ls"); err != nil {
		t.Fatal(err)
	}
	for _, v := range vols {
		o.volumes = append(o.volumes, v.Name)
	}
	for _, l := range [][]string{o.services, o.secrets, o.configs, o.volumes} {
		slices.Sort(l)
	}
	return o
}

// TestPostgresStack deploys docs/examples/pgstack — nginx → the demo-rows
// app → PostgreSQL, on images built from Debian's packages by mmdebstrap and
// packed by `warren image pack --rootfs` — on two nodes with `warren apply`:
// the password is a secret file, nginx's configuration a config, the data a
// named volume, and the app waits for a healthy database. A request through
// the published port writes a row and reads it back; the database task,
// killed, restarts with its rows; a new app image rolls with no failed
// request under load; `stack rm` removes what the stack created and nothing
// else.
func TestPostgresStack(t *testing.T) {
	ktest.Binary(t, "ctr")
	c := newCluster(t, 2)
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	example := filepath.Join(root, "docs", "examples", "pgstack")
	images := filepath.Join(c.dir, "images")
	took := ktest.DebianImages(t, filepath.Join(example, "build-images.sh"), c.bin, images, filepath.Join(example, "pg-start.sh"))
	t.Logf("measured: postgres and nginx images (mmdebstrap, cached under %s, then image pack --rootfs): %s", ktest.CacheRoot, took.Round(time.Millisecond))
	rowsV1 := filepath.Join(filepath.Dir(c.image), "rows-v1.tar")
	rowsV2 := filepath.Join(filepath.Dir(c.image), "rows-v2.tar")
	ktest.File(t, rowsV1, "demo-rows image (make demo-image)")
	ktest.File(t, rowsV2, "demo-rows v2 image (make demo-image)")

	h1, h2 := c.hosts[0], c.hosts[1]
	c.init(h1)
	c.join(h2, h1, strings.TrimSpace(h1.mustCLI("cluster", "join-token", "worker", "-q")))
	begin := time.Now()
	for _, img := range []string{filepath.Join(images, "postgres.tar"), filepath.Join(images, "nginx.tar"), rowsV1, rowsV2, c.image} {
		h1.mustCLI("image", "load", "-i", img)
	}
	t.Logf("measured: image load of postgres, nginx, rows v1+v2 and demo: %s", time.Since(begin).Round(time.Millisecond))

	// What exists before the stack, and must exist after stack rm.
	h1.mustCLI("service", "create", "keep", "--image", demoRef, "--replicas", "1", "--timeout", "2m")
	keepSecret := filepath.Join(c.dir, "keep-secret")
	_ = os.WriteFile(keepSecret, []byte("not the stack's"), 0o600)
	h1.mustCLI("secret", "create", "shop-keep", keepSecret)
	h1.mustCLI("volume", "create", "shop-keep")
	before := h1.objects(t)

	dir := filepath.Join(c.dir, "pgstack")
	if err := os.MkdirAll(filepath.Join(dir, "db"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"compose.yaml", "nginx.conf"} {
		b, err := os.ReadFile(filepath.Join(example, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pw := make([]byte, 12)
	_, _ = rand.Read(pw)
	password := "pw-" + hex.EncodeToString(pw)
	if err := os.WriteFile(filepath.Join(dir, "db", "password.txt"), []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	apply := func(env ...string) (string, string, int) {
		cmd := exec.Command(h1.c.bin, "--data-dir", h1.dataDir, "apply", "-f", "compose.yaml", "--name", "shop", "--timeout", "3m")
		cmd.Dir = dir
		cmd.Env = append(append(os.Environ(), "WEB_PORT=18091"), env...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			code = -1
		}
		return stdout.String(), stderr.String(), code
	}

	// On a failure, what the stack's tasks said.
	logs := func() string {
		var b strings.Builder
		for _, s := range []string{"shop_db", "shop_app", "shop_web"} {
			out, err := h1.cli("service", "logs", "--tail", "15", s)
			fmt.Fprintf(&b, "---- %s logs (%v) ----\n%s", s, err, out)
		}
		return b.String()
	}
	begin = time.Now()
	out, stderr, code := apply()
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s\n%s", code, out, tail(stderr, 3000), logs())
	}
	t.Logf("measured: apply of nginx → app ×2 → postgres (db healthy, app healthy, web healthy): %s", time.Since(begin).Round(time.Millisecond))
	for _, want := range [][]string{{"create", "secret", "shop_db-password"}, {"create", "config", "shop_nginx-conf"}, {"create", "volume", "shop_db-data"}, {"create", "shop_db"}, {"create", "shop_app"}, {"create", "shop_web"}} {
		if !lineHas(out, want...) {
			t.Errorf("plan has no line %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+stderr, password) {
		t.Errorf("apply printed the database password")
	}
	// depends_on service_healthy: the app is created once db is healthy,
	// nginx once the app is.
	dbHealthy, appCreated := strings.Index(stderr, "shop_db: 1/1 running, 1 healthy"), strings.Index(stderr, "shop_app: created")
	appHealthy, webCreated := strings.Index(stderr, "shop_app: 2/2 running, 2 healthy"), strings.Index(stderr, "shop_web: created")
	if dbHealthy < 0 || appCreated < dbHealthy || appHealthy < 0 || webCreated < appHealthy {
		t.Errorf("creations did not follow depends_on service_healthy:\n%s", stderr)
	}

	base := "http://" + h2.ip + ":18091"
	var rows []rowReply
	for i := 0; i < 3; i++ {
		r, err := writeAndRead(h1.nsPath(), base, fmt.Sprintf("row %d before the kill", i))
		if err != nil {
			t.Fatalf("write and read through nginx: %v\n%s", err, logs())
		}
		rows = append(rows, r)
	}
	t.Logf("rows %d..%d written and read back through %s (nginx → app %s → db)", rows[0].ID, rows[2].ID, base, rows[2].Hostname)

	// The same file again: nothing is sent.
	versions := map[string]uint64{}
	for _, s := range []string{"shop_db", "shop_app", "shop_web"} {
		svc, err := h1.service(s)
		if err != nil {
			t.Fatal(err)
		}
		versions[s] = svc.Meta.Version
	}
	out, stderr, code = apply()
	if code != 0 || strings.Contains(out, "create") || strings.Contains(out, "update") || !lineHas(out, "unchanged", "secret", "shop_db-password") || !lineHas(out, "unchanged", "volume", "shop_db-data") {
		t.Errorf("re-apply of the same file: exit %d\n%s\n%s", code, out, stderr)
	}
	for s, v := range versions {
		if svc, _ := h1.service(s); svc.Meta.Version != v {
			t.Errorf("%s: re-apply moved the version %d → %d", s, v, svc.Meta.Version)
		}
	}

	// Kill the database: the node restarts it on the volume's node, and
	// the rows are still there.
	db := c.waitRunning(h1, "shop_db", 1, time.Minute, nil)[0]
	if err := syscall.Kill(db.Status.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 the database (task %s, pid %d): %v", short(db.ID), db.Status.PID, err)
	}
	killed := time.Now()
	c.waitRunning(h1, "shop_db", 1, 2*time.Minute, func(ts []api.Task) error {
		if ts[0].Status.PID == db.Status.PID {
			return fmt.Errorf("still the killed process %d", db.Status.PID)
		}
		if ts[0].Status.Health != api.HealthHealthy {
			return fmt.Errorf("database task %s", ts[0].Status.Health)
		}
		if ts[0].NodeID != db.NodeID {
			return fmt.Errorf("database moved from node %s to %s: its volume is on the first", short(db.NodeID), short(ts[0].NodeID))
		}
		return nil
	})
	var after rowReply
	eventually(t, "rows read back after the database restarted", time.Minute, func() error {
		for _, r := range rows {
			got, err := rowsCall(h1.nsPath(), http.MethodGet, fmt.Sprintf("%s/rows/%d", base, r.ID), "")
			if err != nil {
				return err
			}
			if got.Body != r.Body {
				return fmt.Errorf("row %d reads %q, was %q", r.ID, got.Body, r.Body)
			}
		}
		var err error
		after, err = writeAndRead(h1.nsPath(), base, "row after the kill")
		return err
	})
	t.Logf("measured: database killed → restarted healthy and every row read back: %s (new row %d)", time.Since(killed).Round(time.Millisecond), after.ID)

	// A new app image, under load: every request through nginx succeeds.
	stop := make(chan struct{})
	type result struct {
		n        int
		errs     []error
		versions map[string]int
	}
	during := make(chan result)
	go func() {
		r := result{versions: map[string]int{}}
		for i := 0; ; i++ {
			select {
			case <-stop:
				during <- r
				return
			default:
			}
			got, err := writeAndRead(h1.nsPath(), base, fmt.Sprintf("row %d during the rollout", i))
			r.n++
			if err != nil {
				r.errs = append(r.errs, err)
			} else {
				r.versions[got.Version]++
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	out, stderr, code = apply("APP_TAG=v2")
	time.Sleep(time.Second) // a few requests after the rollout, to see v2 answer
	close(stop)
	r := <-during
	if code != 0 || !lineHas(out, "update", "shop_app") || !lineHas(out, "unchanged", "shop_db") || !lineHas(out, "unchanged", "shop_web") ||
		!strings.Contains(out, `task.container.image: "warren/rows:v1" → "warren/rows:v2"`) {
		t.Fatalf("apply with APP_TAG=v2: exit %d\n%s\n%s", code, out, stderr)
	}
	t.Logf("measured: app v1 → v2 through apply: %d write+read pairs through nginx, %d failed; answers by version %v", r.n, len(r.errs), r.versions)
	if len(r.errs) > 0 {
		t.Errorf("%d of %d write+read pairs failed during the rollout; first: %v", len(r.errs), r.n, r.errs[0])
	}
	if r.versions["v2"] == 0 {
		t.Errorf("no answer from v2 after the rollout: %v", r.versions)
	}

	// stack rm: the services, then the secret, config and volume; nothing
	// of anyone else's.
	out = h1.mustCLI("stack", "rm", "shop")
	for _, want := range []string{"shop_db", "shop_app", "shop_web", "secret shop_db-password", "config shop_nginx-conf", "volume shop_db-data"} {
		if !strings.Contains(out, want) {
			t.Errorf("stack rm does not say it removed %s:\n%s", want, out)
		}
	}
	now := h1.objects(t)
	if fmt.Sprint(now) != fmt.Sprint(before) {
		t.Errorf("after stack rm the cluster holds %+v, before the stack %+v", now, before)
	}
}
