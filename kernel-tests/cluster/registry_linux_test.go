//go:build linux

package clustertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/kernel-tests/ktest"
	registrytest "github.com/warrenhq/warren/kernel-tests/registry"
)

// registryHost is a netns on the cluster's switch for a registry; idx
// picks its address (prefix.200+idx), apart from the warren hosts'.
func (c *cluster) registryHost(t *testing.T, idx int) (netns, ip string) {
	t.Helper()
	netns = newNetns(t, fmt.Sprintf("reg%d", idx))
	ip = fmt.Sprintf("%s%d", c.prefix, 200+idx)
	port := fmt.Sprintf("r%d", idx)
	ktest.Run(t, "ip", "-n", c.sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", netns)
	ktest.Run(t, "ip", "-n", c.sw, "link", "set", port, "master", "br0", "up")
	ktest.Run(t, "ip", "-n", netns, "addr", "add", ip+"/24", "dev", "eth0")
	ktest.Run(t, "ip", "-n", netns, "link", "set", "eth0", "up")
	return netns, ip
}

// cliIn is cli with stdin (passwords are never arguments).
func (h *host) cliIn(stdin string, args ...string) (string, error) {
	return h.cliWith(stdin, nil, args...)
}

// cliWith is cli with stdin and env added to the test's environment; the
// output is stdout and stderr (where progress goes) together.
func (h *host) cliWith(stdin string, env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.c.bin, append([]string{"--data-dir", h.dataDir}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("warren %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func mustPush(t *testing.T, r *registrytest.Registry, archive, repoTag string) string {
	t.Helper()
	d, err := r.Push(archive, repoTag)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustTasks(t *testing.T, h *host, svc string) []api.Task {
	t.Helper()
	ts, err := h.tasks(svc)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// demoV2 is the v2 demo archive beside the v1 one (make demo-image).
func demoV2(t *testing.T, v1 string) string {
	t.Helper()
	p := filepath.Join(filepath.Dir(v1), "demo-v2.tar")
	ktest.File(t, p, "the v2 demo image archive (make demo-image)")
	return p
}

func v1Platform(arch string) v1.Platform { return v1.Platform{OS: "linux", Architecture: arch} }

// TestRegistry runs a cluster of two nodes against a real registry
// (docker-registry with TLS from a test CA and htpasswd auth) and a mirror
// of it: a pull by tag with a login, the pin that keeps tasks on the
// digest a tag named at create, wrong credentials, a registry that is down
// when the node pulls, create's pull progress on a slow link, a
// credential from a docker credential helper, and the mirror tried before
// the registry.
func TestRegistry(t *testing.T) {
	c := newCluster(t, 2)
	h1, h2 := c.hosts[0], c.hosts[1]
	regNS, regIP := c.registryHost(t, 0)
	mirNS, mirIP := c.registryHost(t, 1)
	reg := registrytest.Start(t, registrytest.Options{NetNS: regNS, IP: regIP})
	mir := registrytest.Start(t, registrytest.Options{NetNS: mirNS, IP: mirIP, NoAuth: true})
	v1, v2 := c.image, demoV2(t, c.image)

	// A short image GC grace on h1, so the last subtest sees an unused
	// image go (an image is kept that long after it was last in use, or
	// first seen, so one pulled for a task about to start stays).
	c.init(h1, "--image-gc-grace", "8s")
	// h2 plays an arm64 node: it reports (and pulls) linux/arm64; the
	// demo binary in the "arm64" images is the host's, so it still runs.
	tok := strings.TrimSpace(h1.mustCLI("cluster", "join-token", "worker", "-q"))
	h2.start(append(append([]string{"cluster", "join", "--token", tok, h1.ip + ":2377"}, h2.nodeFlags()...), "--platform", "linux/arm64")...)
	c.waitReady(h2, h1, 90*time.Second)
	amd := "--constraint=node.platform.arch==amd64"

	// Both CAs in one file: the cluster trusts them for every registry.
	caFile := filepath.Join(t.TempDir(), "cas.pem")
	if err := os.WriteFile(caFile, append(append([]byte{}, reg.CAPEM...), mir.CAPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	h1.mustCLI("cluster", "update", "--registry-ca", caFile)

	t.Run("pull by tag with a login", func(t *testing.T) {
		d1 := mustPush(t, reg, v1, "demo:v1")
		if _, err := h1.cliIn(reg.Password+"\n", "registry", "login", reg.Host, "-u", reg.User, "--password-stdin"); err != nil {
			t.Fatal(err)
		}
		if out := h1.mustCLI("registry", "ls"); strings.Contains(out, reg.Password) || !lineHas(out, reg.Host, "yes") {
			t.Fatalf("registry ls:\n%s", out)
		}
		begin := time.Now()
		h1.mustCLI("service", "create", "rega", "--image", reg.Ref("demo:v1"), "--replicas", "2", "--timeout", "2m")
		c.waitRunning(h1, "rega", 2, 2*time.Minute, nil)
		took := time.Since(begin)
		svc, err := h1.service("rega")
		if err != nil {
			t.Fatal(err)
		}
		if got := svc.Spec.Task.Container; got.Image != reg.Ref("demo:v1") || got.ImageDigest != d1 {
			t.Fatalf("inspect: image %q digest %q, want both the tag and %s", got.Image, got.ImageDigest, d1)
		}
		out := h1.mustCLI("service", "inspect", "rega")
		if strings.Contains(out, reg.Password) {
			t.Fatal("service inspect shows the registry password")
		}
		for _, h := range c.hosts {
			if b, _ := os.ReadFile(h.logPath); strings.Contains(string(b), reg.Password) {
				t.Fatalf("%s's log holds the registry password", h.name)
			}
			if files := filesHolding(t, h.dataDir, reg.Password); len(files) > 0 {
				t.Fatalf("%s's data dir holds the registry password in %v", h.name, files)
			}
		}
		t.Logf("measured: 2 tasks pulled %s with a login and running in %v; registry served %d manifest and %d blob requests",
			reg.Ref("demo:v1"), took.Round(time.Millisecond), reg.Requests("/v2/demo/manifests/", 200), reg.Requests("/v2/demo/blobs/", 200))
	})

	t.Run("a tag moved after create changes nothing", func(t *testing.T) {
		d1 := mustPush(t, reg, v1, "pin:latest")
		h1.mustCLI("service", "create", "pin", "--image", reg.Ref("pin:latest"), "--replicas", "1", "--timeout", "2m")
		c.waitRunning(h1, "pin", 1, 2*time.Minute, nil)
		d2 := mustPush(t, reg, v2, "pin:latest")
		if d1 == d2 {
			t.Fatal("the v1 and v2 demo images have one digest: the test could not see a moved tag")
		}
		// New tasks after the move (scale up, on both nodes) run the pin.
		h1.mustCLI("service", "scale", "pin=3", "--timeout", "2m")
		run := c.waitRunning(h1, "pin", 3, 2*time.Minute, nil)
		for _, tk := range run {
			if tk.Spec.Container.ImageDigest != d1 {
				t.Fatalf("task %s runs %q, want the pinned %s", tk.ID, tk.Spec.Container.ImageDigest, d1)
			}
			h := c.hostOfNode(t, tk.NodeID)
			body, err := httpGet(h.nsPath(), "http://"+tk.Status.Addr+":80/")
			if err != nil {
				t.Fatal(err)
			}
			if r, err := parseDemo(body); err != nil || r.Version == "v2" {
				t.Fatalf("task %s answers version %q (%v): the moved tag reached it", tk.ID, r.Version, err)
			}
		}
		moved := reg.Requests("/v2/pin/manifests/latest", 200)
		// An update with --force pins the tag again: now v2.
		h1.mustCLI("service", "update", "pin", "--force", "--timeout", "3m")
		svc, err := h1.service("pin")
		if err != nil || svc.Spec.Task.Container.ImageDigest != d2 {
			t.Fatalf("after update --force: digest %q (%v), want %s", svc.Spec.Task.Container.ImageDigest, err, d2)
		}
		t.Logf("measured: 3 tasks on the pinned %s after the tag moved to %s; the tag was resolved %d times before the forced update", short(d1[7:]), short(d2[7:]), moved)
	})

	t.Run("wrong credentials are a task error without a retry storm", func(t *testing.T) {
		mustPush(t, reg, v1, "other:v1")
		if _, err := h1.cliIn("wrong-password\n", "registry", "login", reg.Host, "-u", reg.User, "--password-stdin"); err != nil {
			t.Fatal(err)
		}
		out, err := h1.cli("service", "create", "bad", "--image", reg.Ref("other:v1"), "--replicas", "1", amd, "-d")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("create with wrong credentials: %s", strings.TrimSpace(out))
		before := reg.Requests("/v2/other/", 401)
		begin := time.Now()
		var msg string
		eventually(t, "bad: a task error naming the refused credentials", 60*time.Second, func() error {
			ts, err := h1.tasks("bad")
			if err != nil {
				return err
			}
			for _, tk := range ts {
				if strings.Contains(tk.Status.Err, "401") {
					msg = tk.Status.Err
					return nil
				}
			}
			return fmt.Errorf("no 401 yet: %s", describeTasks(ts))
		})
		if !strings.Contains(msg, "registry login "+reg.Host) {
			t.Fatalf("task error does not say what to do: %s", msg)
		}
		// Watch for a while: the node holds a refused pull back (5 s, then
		// doubling), so a bounded number of requests reach the registry.
		// Without the hold the restart policy alone (100 ms doubling) let
		// 40 through in these 20 s.
		time.Sleep(20 * time.Second)
		window := time.Since(begin)
		n := reg.Requests("/v2/other/", 401) - before
		if n > 20 {
			t.Fatalf("%d requests answered 401 in %v: a retry storm", n, window.Round(time.Second))
		}
		// The right login: the failing task uses it at its next attempt.
		if _, err := h1.cliIn(reg.Password+"\n", "registry", "login", reg.Host, "-u", reg.User, "--password-stdin"); err != nil {
			t.Fatal(err)
		}
		fixed := time.Now()
		c.waitRunning(h1, "bad", 1, 90*time.Second, nil)
		t.Logf("measured: task error %q; %d registry requests answered 401 in %v; running %v after the login was fixed",
			tail(msg, 160), n, window.Round(time.Second), time.Since(fixed).Round(time.Millisecond))
		h1.mustCLI("service", "rm", "bad")
	})

	t.Run("a registry stopped mid-pull is retried", func(t *testing.T) {
		base, err := registrytest.LoadArchive(v1, "", "")
		if err != nil {
			t.Fatal(err)
		}
		big, err := registrytest.WithRandomLayer(base, 3<<20)
		if err != nil {
			t.Fatal(err)
		}
		d, err := reg.PushImage(big, "late:v1")
		if err != nil {
			t.Fatal(err)
		}
		// Slow the registry's link so the new 3 MB layer takes seconds, stop
		// the registry while h1's containerd holds a partial download,
		// start it again and the task completes.
		ktest.Run(t, "tc", "-n", regNS, "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "3mbit", "burst", "32kbit", "latency", "400ms")
		shaped := true
		defer func() {
			if shaped {
				ktest.RunQuiet("tc", "-n", regNS, "qdisc", "del", "dev", "eth0", "root")
			}
		}()
		created := time.Now()
		h1.mustCLI("service", "create", "late", "--image", reg.Ref("late:v1"), "--replicas", "1", amd, "-d")
		var partial string
		// ctr content active: REF SIZE AGE; wait for some of the layer
		// to have arrived, so the stop cuts a transfer, not a request.
		eventually(t, "h1 part-way through the layer", 30*time.Second, func() error {
			out := ktest.Run(t, "ctr", "--address", h1.ctd.Socket, "-n", h1.ctdNS, "content", "active")
			for _, l := range strings.Split(out, "\n")[1:] {
				f := strings.Fields(l)
				if len(f) >= 2 && strings.HasPrefix(f[0], "layer-") && f[1] != "0B" && !strings.HasSuffix(f[1], " B") {
					partial = strings.Join(f, " ")
					return nil
				}
			}
			return fmt.Errorf("no layer bytes arrived yet:\n%s", out)
		})
		reg.Stop()
		stopped := time.Now()
		eventually(t, "late: a task error while the registry is down", 60*time.Second, func() error {
			ts, err := h1.tasks("late")
			if err != nil {
				return err
			}
			for _, tk := range ts {
				if tk.Status.Err != "" {
					return nil
				}
			}
			return fmt.Errorf("no pull error yet: %s", describeTasks(ts))
		})
		ktest.Run(t, "tc", "-n", regNS, "qdisc", "del", "dev", "eth0", "root")
		shaped = false
		reg.Start()
		back := time.Now()
		run := c.waitRunning(h1, "late", 1, 2*time.Minute, nil)
		if run[0].Spec.Container.ImageDigest != d {
			t.Fatalf("late runs %q, want %s", run[0].Spec.Container.ImageDigest, d)
		}
		t.Logf("measured: registry stopped %v into the pull (active download: %s); the task ran %v after it came back",
			stopped.Sub(created).Round(time.Millisecond), partial, time.Since(back).Round(time.Millisecond))
	})

	t.Run("create shows each node's pull progress", func(t *testing.T) {
		base, err := registrytest.LoadArchive(v1, "", "")
		if err != nil {
			t.Fatal(err)
		}
		big, err := registrytest.WithRandomLayer(base, 3<<20)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.PushImage(big, "prog:v1"); err != nil {
			t.Fatal(err)
		}
		ref := reg.Ref("prog:v1")
		// 3 MB at 4 Mbit/s: the pull takes about 6 s, several samples.
		ktest.Run(t, "tc", "-n", regNS, "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "4mbit", "burst", "32kbit", "latency", "400ms")
		defer ktest.RunQuiet("tc", "-n", regNS, "qdisc", "del", "dev", "eth0", "root")
		begin := time.Now()
		out, err := h1.cliWith("", nil, "service", "create", "prog", "--image", ref, "--replicas", "1", amd, "--timeout", "2m")
		if err != nil {
			t.Fatal(err)
		}
		took := time.Since(begin)
		ktest.RunQuiet("tc", "-n", regNS, "qdisc", "del", "dev", "eth0", "root")
		run := c.waitRunning(h1, "prog", 1, time.Minute, nil)
		if c.hostOfNode(t, run[0].NodeID) != h1 {
			t.Fatalf("prog runs on %s, want h1 (the amd64 node)", run[0].NodeID)
		}
		if run[0].Status.Pull != (api.PullProgress{}) {
			t.Fatalf("a running task still reports a pull: %+v", run[0].Status.Pull)
		}
		nodes, err := h1.nodes()
		if err != nil {
			t.Fatal(err)
		}
		name := client.NodeNames(nodes)[run[0].NodeID]
		// "NAME: pulling REF DONE/TOTAL UNIT"
		re := regexp.MustCompile(`^(.+): pulling (\S+) ([0-9.]+)/([0-9.]+) (B|kB|MB|GB)$`)
		var partial, lines []string
		for _, l := range strings.Split(out, "\n") {
			m := re.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			lines = append(lines, l)
			if m[1] != name || m[2] != ref {
				t.Fatalf("a pull line for another node or image (want %s pulling %s):\n%s", name, ref, out)
			}
			done, _ := strconv.ParseFloat(m[3], 64)
			total, _ := strconv.ParseFloat(m[4], 64)
			if done < total {
				partial = append(partial, l)
			}
		}
		if len(partial) == 0 {
			t.Fatalf("create showed no pull part-way (done < total) for %s:\n%s", name, out)
		}
		if !strings.Contains(out, name+": pulled "+ref+", running") || !strings.Contains(out, "prog: 1/1 ready, converged") {
			t.Fatalf("create did not end with the pull replaced by running and the service converged:\n%s", out)
		}
		// The managers were asked first and did not hold it: expected, so
		// not a line at the node's default (info) level.
		b, err := os.ReadFile(h1.logPath)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "image fetcher") && strings.Contains(l, ref) {
				t.Fatalf("h1 logs the managers' not found for a registry image:\n%s", l)
			}
		}
		t.Logf("measured: create of a 3 MB layer at 4 Mbit/s took %v and showed %d pull lines, %d part-way (first %q, last %q)",
			took.Round(time.Millisecond), len(lines), len(partial), partial[0], partial[len(partial)-1])
		h1.mustCLI("service", "rm", "prog")
	})

	t.Run("--with-registry-auth asks a docker credential helper", func(t *testing.T) {
		mustPush(t, reg, v1, "helper:v1")
		// Without the cluster's login only the CLI's credential can pull.
		h1.mustCLI("registry", "logout", reg.Host)
		defer func() {
			if _, err := h1.cliIn(reg.Password+"\n", "registry", "login", reg.Host, "-u", reg.User, "--password-stdin"); err != nil {
				t.Error(err)
			}
		}()
		bin, cfg := t.TempDir(), t.TempDir()
		asked := filepath.Join(t.TempDir(), "asked")
		helper := fmt.Sprintf("#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread -r server\necho \"$server\" >> %s\n"+
			"[ \"$server\" = %s ] || { echo \"credentials not found in native keychain\"; exit 1; }\n"+
			"printf '{\"ServerURL\":\"%%s\",\"Username\":\"%s\",\"Secret\":\"%s\"}' \"$server\"\n", asked, reg.Host, reg.User, reg.Password)
		if err := os.WriteFile(filepath.Join(bin, "docker-credential-ktest"), []byte(helper), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cfg, "config.json"), []byte(`{"credHelpers":{"`+reg.Host+`":"ktest"}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		env := []string{"DOCKER_CONFIG=" + cfg, "PATH=" + bin + ":" + os.Getenv("PATH"), "WARREN_REGISTRY_AUTH="}
		// A helper that is not installed is named, and nothing is written.
		if err := os.WriteFile(filepath.Join(cfg, "config.json"), []byte(`{"credHelpers":{"`+reg.Host+`":"absent"}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := h1.cliWith("", env, "service", "create", "helper", "--image", reg.Ref("helper:v1"), amd, "--with-registry-auth", "-d")
		if err == nil || !strings.Contains(out, "docker-credential-absent") || !strings.Contains(out, reg.Host) {
			t.Fatalf("create with a missing helper: %v\n%s", err, out)
		}
		if err := os.WriteFile(filepath.Join(cfg, "config.json"), []byte(`{"credHelpers":{"`+reg.Host+`":"ktest"}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := h1.cliWith("", env, "service", "create", "helper", "--image", reg.Ref("helper:v1"), amd, "--with-registry-auth", "--timeout", "2m"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		c.waitRunning(h1, "helper", 1, time.Minute, nil)
		if b, err := os.ReadFile(asked); err != nil || strings.TrimSpace(string(b)) != reg.Host {
			t.Fatalf("the helper was asked for %q (%v), want %s once", b, err, reg.Host)
		}
		if out := h1.mustCLI("service", "inspect", "helper"); strings.Contains(out, reg.Password) {
			t.Fatal("service inspect shows the helper's secret")
		}
		t.Logf("measured: a task pulled %s with the credential docker-credential-ktest gave, no cluster login", reg.Ref("helper:v1"))
		h1.mustCLI("service", "rm", "helper")
	})

	t.Run("a two-platform index places by platform", func(t *testing.T) {
		img, err := registrytest.LoadArchive(v1, "", "")
		if err != nil {
			t.Fatal(err)
		}
		arm, err := registrytest.LoadArchive(v1, "arm64", "")
		if err != nil {
			t.Fatal(err)
		}
		both, err := reg.PushIndex("multi:v1", []registrytest.PlatformImage{
			{Image: img, Platform: v1Platform("amd64")}, {Image: arm, Platform: v1Platform("arm64")},
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.PushIndex("armonly:v1", []registrytest.PlatformImage{{Image: arm, Platform: v1Platform("arm64")}}); err != nil {
			t.Fatal(err)
		}
		h1.mustCLI("service", "create", "multi", "--image", reg.Ref("multi:v1"), "--replicas", "4", "--timeout", "2m")
		run := c.waitRunning(h1, "multi", 4, 2*time.Minute, nil)
		per := map[*host]int{}
		for _, tk := range run {
			per[c.hostOfNode(t, tk.NodeID)]++
		}
		if per[h1] == 0 || per[h2] == 0 {
			t.Fatalf("an index of amd64 and arm64 ran %d tasks on h1 (amd64) and %d on h2 (arm64): want both", per[h1], per[h2])
		}
		svc, err := h1.service("multi")
		if err != nil || svc.Spec.Task.Container.ImageDigest != both || len(svc.Spec.Task.Container.ImagePlatforms) != 2 {
			t.Fatalf("multi pinned to %q with platforms %v (%v), want the index %s and its 2 platforms", svc.Spec.Task.Container.ImageDigest, svc.Spec.Task.Container.ImagePlatforms, err, both)
		}
		h1.mustCLI("service", "create", "armonly", "--image", reg.Ref("armonly:v1"), "--replicas", "2", "--timeout", "2m")
		for _, tk := range c.waitRunning(h1, "armonly", 2, 2*time.Minute, nil) {
			if c.hostOfNode(t, tk.NodeID) != h2 {
				t.Fatalf("an arm64-only image ran on %s", tk.NodeID)
			}
		}
		// An amd64-only image asked onto arm64 nodes says why it waits.
		h1.mustCLI("service", "create", "noarm", "--image", reg.Ref("demo:v1"), "--constraint", "node.platform.arch==arm64", "-d")
		var reason string
		eventually(t, "noarm: pending with the platform named", 30*time.Second, func() error {
			ts, err := h1.tasks("noarm")
			if err != nil {
				return err
			}
			for _, tk := range ts {
				if strings.Contains(tk.Status.Message, "image has no linux/arm64") {
					reason = tk.Status.Message
					return nil
				}
			}
			return fmt.Errorf("no reason yet: %s", describeTasks(ts))
		})
		ps := h1.mustCLI("service", "ps", "noarm")
		if !strings.Contains(ps, "image has no linux/arm64") {
			t.Fatalf("service ps does not explain:\n%s", ps)
		}
		h1.mustCLI("service", "rm", "noarm")
		t.Logf("measured: index of 2 platforms: %d tasks on amd64, %d on arm64; arm64-only: 2 on arm64; amd64-only on arm64: %q", per[h1], per[h2], reason)
	})

	t.Run("the mirror is used before the registry", func(t *testing.T) {
		mustPush(t, mir, v2, "mir:v1")
		mustPush(t, reg, v1, "mir:v1")
		// The pushes' own requests are not pulls.
		upBefore, mirBefore := reg.Requests("/v2/mir/", 0), mir.Requests("/v2/mir/", 200)
		h1.mustCLI("cluster", "update", "--registry-mirror", reg.Host+"="+mir.URL())
		h1.mustCLI("service", "create", "mir", "--image", reg.Ref("mir:v1"), "--replicas", "2", amd, "--timeout", "2m")
		run := c.waitRunning(h1, "mir", 2, 2*time.Minute, nil)
		for _, tk := range run {
			body, err := httpGet(c.hostOfNode(t, tk.NodeID).nsPath(), "http://"+tk.Status.Addr+":80/")
			if err != nil {
				t.Fatal(err)
			}
			if r, err := parseDemo(body); err != nil || r.Version != "v2" {
				t.Fatalf("task %s answers version %q (%v): want the mirror's image (v2), not the registry's", tk.ID, r.Version, err)
			}
		}
		up := reg.Requests("/v2/mir/", 0) - upBefore
		mirrored := mir.Requests("/v2/mir/", 200) - mirBefore
		if up != 0 || mirrored == 0 {
			t.Fatalf("registry saw %d requests for mir, the mirror %d: want all at the mirror", up, mirrored)
		}
		t.Logf("measured: mirror served %d requests for mir:v1, the registry %d", mirrored, up)
	})

	t.Run("images no task uses are collected", func(t *testing.T) {
		d1, err := reg.Head("demo:v1")
		if err != nil {
			t.Fatal(err)
		}
		name := reg.Ref("demo") + "@" + d1
		images := func() string {
			return ktest.Run(t, "ctr", "--address", h1.ctd.Socket, "-n", h1.ctdNS, "images", "ls", "-q")
		}
		if !strings.Contains(images(), name) {
			t.Fatalf("h1 does not hold %s before the test:\n%s", name, images())
		}
		h1.mustCLI("service", "rm", "rega")
		gone := time.Now()
		eventually(t, "h1 removes the image rega used", 60*time.Second, func() error {
			if strings.Contains(images(), name) {
				return fmt.Errorf("%s still on h1", name)
			}
			return nil
		})
		still := images()
		for _, svc := range []string{"pin", "multi", "mir"} {
			for _, tk := range runningTasks(mustTasks(t, h1, svc)) {
				if c.hostOfNode(t, tk.NodeID) == h1 && !strings.Contains(still, "@"+tk.Spec.Container.ImageDigest) && !strings.Contains(still, tk.Spec.Container.ImageDigest) {
					t.Fatalf("the image of running task %s (%s) was collected:\n%s", tk.ID, tk.Spec.Container.ImageDigest, still)
				}
			}
		}
		t.Logf("measured: an image no task used was removed %v after its service (grace 8s)", time.Since(gone).Round(time.Second))
	})
}
