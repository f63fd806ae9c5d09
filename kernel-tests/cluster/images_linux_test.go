//go:build linux

package clustertest

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/kernel-tests/ktest"
)

// TestImagesOnEveryManager: an image loaded through one manager is kept
// by all three (one of them down during the load, so it catches up when
// back), so that manager can be lost for good and the image still
// runs; a node fetches it once and restarts its task from the local copy;
// and a two-platform archive (image pack --platform) places on an amd64
// and an arm64 node, each running its own platform's root filesystem.
//
// h1..h3 are managers (with agents, amd64), h4 a worker posing as
// linux/arm64 (its containerd unpacks the arm64 manifest; the demo binary
// in both root filesystems is the host's, so it runs either way).
func TestImagesOnEveryManager(t *testing.T) {
	ktest.Binary(t, "ctr")
	c := newCluster(t, 4)
	h1, h2, h3, h4 := c.hosts[0], c.hosts[1], c.hosts[2], c.hosts[3]
	multi := packTwoPlatformDemo(t, c)

	c.init(h1)
	mtok := strings.TrimSpace(h1.mustCLI("cluster", "join-token", "manager", "-q"))
	c.join(h2, h1, mtok)
	c.join(h3, h1, mtok)
	eventually(t, "3 voting managers", 60*time.Second, func() error {
		info, err := h1.info()
		if err != nil {
			return err
		}
		voters := 0
		for _, m := range info.Managers {
			if m.Voter {
				voters++
			}
		}
		if voters != 3 {
			return fmt.Errorf("%d voters", voters)
		}
		return nil
	})
	wtok := strings.TrimSpace(h1.mustCLI("cluster", "join-token", "worker", "-q"))
	h4.start(append(append([]string{"cluster", "join", "--token", wtok, h1.ip + ":2377"}, h4.nodeFlags()...), "--platform", "linux/arm64")...)
	c.waitReady(h4, h1, 90*time.Second)
	id1, id4 := h1.nodeID(t), h4.nodeID(t)

	// Loaded through h1 only, while h3 is down: h2 fetches it on its own,
	// and h3 when it is back.
	h3.stop(syscall.SIGTERM)
	out := h1.mustCLI("image", "load", "-i", multi)
	loaded := time.Now()
	if !strings.Contains(out, "linux/amd64,linux/arm64") {
		t.Fatalf("image load did not report the archive's two platforms:\n%s", out)
	}
	var img api.Image
	holders := func(n int) func() error {
		return func() error {
			var imgs []api.Image
			if err := h1.cliJSON(&imgs, "image", "ls"); err != nil {
				return err
			}
			if len(imgs) != 1 || len(imgs[0].Holders) != n {
				return fmt.Errorf("images %+v", imgs)
			}
			img = imgs[0]
			return nil
		}
	}
	eventually(t, "h1 and h2 hold the image", 60*time.Second, holders(2))
	replicated := time.Since(loaded)
	if ls := h1.mustCLI("image", "ls"); !lineHas(ls, "docker.io/warren/multi:v1", "2/3") {
		t.Fatalf("image ls with h3 down does not show 2/3:\n%s", ls)
	}
	h3.start(h3.args...)
	back := time.Now()
	eventually(t, "h3, back, holds the image too", 90*time.Second, holders(3))
	caughtUp := time.Since(back)
	for _, h := range []*host{h1, h2, h3} {
		p := filepath.Join(h.dataDir, "images", "sha256", strings.TrimPrefix(img.Digest, "sha256:"))
		if st, err := os.Stat(p); err != nil || st.Size() != img.Size {
			t.Fatalf("%s records itself as a holder but its blob is %v (%v)", h.name, st, err)
		}
	}
	if ls := h2.mustCLI("image", "ls"); !lineHas(ls, "docker.io/warren/multi:v1", "linux/amd64,linux/arm64", "3/3") {
		t.Fatalf("image ls does not show 3/3 managers and both platforms:\n%s", ls)
	}
	t.Logf("measured: loaded through h1 -> held by h2 in %s (%.1f MB); h3, down during the load, held it %s after its restart",
		replicated.Round(time.Millisecond), float64(img.Size)/1e6, caughtUp.Round(time.Millisecond))

	// h1 is gone for good: killed, its data dir deleted.
	h1.stop(syscall.SIGKILL)
	if err := os.RemoveAll(h1.dataDir); err != nil {
		t.Fatal(err)
	}
	_ = os.RemoveAll(filepath.Join("/sys/fs/bpf/warren", id1))
	eventually(t, "a new leader among h2 and h3", 30*time.Second, func() error {
		leader, _, err := leaderOf(h2)
		if err != nil || leader == "" || leader == id1 {
			return fmt.Errorf("leader %q (%v)", leader, err)
		}
		return nil
	})

	// The worker has never seen the image; it gets it from h2 or h3.
	before := nodeFetches(t, h2, h3)
	h2.mustCLI("service", "create", "onworker", "--image", "warren/multi:v1", "--constraint", "node.id=="+id4, "--timeout", "2m")
	run := c.waitRunning(h2, "onworker", 1, 2*time.Minute, nil)
	victim := run[0]
	if victim.NodeID != id4 {
		t.Fatalf("onworker runs on %s, want the worker %s", victim.NodeID, id4)
	}
	if got := strings.TrimSpace(mustExec(t, h4, victim, "cat", "/etc/platform")); got != "arm64" {
		t.Fatalf("the arm64 worker runs the %q root filesystem, want arm64", got)
	}
	fetched := nodeFetches(t, h2, h3) - before
	if fetched != 1 {
		t.Fatalf("the worker fetched the image %d times from the managers, want once", fetched)
	}
	// It imported the arm64 content only: the amd64 layer, written while
	// the archive was read, is referenced by nothing and collected.
	amdLayer := layerOf(t, multi, "amd64")
	eventually(t, "the worker keeps no amd64 layer", 30*time.Second, func() error {
		out, err := exec.Command("ctr", "--address", h4.ctd.Socket, "-n", h4.ctdNS, "content", "ls", "-q").CombinedOutput()
		if err != nil {
			return fmt.Errorf("ctr content ls: %v: %s", err, out)
		}
		if strings.Contains(string(out), amdLayer) {
			return fmt.Errorf("h4's content store still holds the amd64 layer %s", amdLayer)
		}
		if !strings.Contains(string(out), layerOf(t, multi, "arm64")) {
			return errStop(fmt.Errorf("h4's content store lacks its own arm64 layer:\n%s", out))
		}
		return nil
	})

	// A task killed restarts from the node's copy: no fetch.
	before = nodeFetches(t, h2, h3)
	if err := syscall.Kill(victim.Status.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d (task %s): %v", victim.Status.PID, short(victim.ID), err)
	}
	c.waitRunning(h2, "onworker", 1, time.Minute, func(ts []api.Task) error {
		if ts[0].Status.PID == victim.Status.PID {
			return fmt.Errorf("task %s still at pid %d", short(ts[0].ID), victim.Status.PID)
		}
		return nil
	})
	if n := nodeFetches(t, h2, h3) - before; n != 0 {
		t.Fatalf("the restarted task made the node fetch its image %d times, want 0 (local copy)", n)
	}

	// A global service of the two-platform image: one task per node, each
	// running its own platform's root filesystem.
	h2.mustCLI("service", "create", "everywhere", "--image", "warren/multi:v1", "--mode", "global", "--timeout", "2m")
	all := c.waitRunning(h2, "everywhere", 3, 2*time.Minute, nil)
	perArch := map[string]int{}
	for _, tk := range all {
		h := c.hostOfNode(t, tk.NodeID)
		want := "amd64"
		if h == h4 {
			want = "arm64"
		}
		got := strings.TrimSpace(mustExec(t, h, tk, "cat", "/etc/platform"))
		if got != want {
			t.Fatalf("%s runs the %q root filesystem, want %s", h.name, got, want)
		}
		perArch[got]++
	}
	if perArch["amd64"] != 2 || perArch["arm64"] != 1 {
		t.Fatalf("global tasks by platform %v, want 2 amd64 (h2, h3) and 1 arm64 (h4)", perArch)
	}
	t.Logf("measured: after h1 was lost, the worker fetched the image %d time(s), 0 more after kill -9 of its task; global service: %v", fetched, perArch)

	// A single-platform archive (the amd64 demo image) is placed by its
	// platform too: asked onto the arm64 worker, its task waits and says why.
	h2.mustCLI("image", "load", "-i", c.image)
	h2.mustCLI("service", "create", "amdonly", "--image", demoRef, "--constraint", "node.id=="+id4, "-d")
	eventually(t, "amdonly: pending with the platform named", 30*time.Second, func() error {
		ts, err := h2.tasks("amdonly")
		if err != nil {
			return err
		}
		for _, tk := range ts {
			if tk.Status.State == api.TaskRunning {
				return errStop(fmt.Errorf("an amd64-only archive runs on the arm64 worker: %s", describeTasks(ts)))
			}
			if strings.Contains(tk.Status.Message, "image has no linux/arm64") {
				return nil
			}
		}
		return fmt.Errorf("no reason yet: %s", describeTasks(ts))
	})

	// image rm deletes the archive on every manager, not only the leader.
	h2.mustCLI("image", "rm", "warren/multi:v1")
	removed := time.Now()
	eventually(t, "no manager keeps the removed image's blob", 30*time.Second, func() error {
		for _, h := range []*host{h2, h3} {
			p := filepath.Join(h.dataDir, "images", "sha256", strings.TrimPrefix(img.Digest, "sha256:"))
			if _, err := os.Stat(p); err == nil {
				return fmt.Errorf("%s still has %s", h.name, p)
			}
		}
		return nil
	})
	t.Logf("measured: image rm -> blob gone on both managers in %s", time.Since(removed).Round(time.Millisecond))
}

// packTwoPlatformDemo packs the demo server into a linux/amd64 and a
// linux/arm64 root filesystem that differ only by /etc/platform.
func packTwoPlatformDemo(t *testing.T, c *cluster) string {
	t.Helper()
	bin := filepath.Join(filepath.Dir(c.image), "demo-server")
	ktest.File(t, bin, "the demo server binary (make demo-image)")
	server, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	args := []string{"image", "pack", "--name", "warren/multi:v1", "--entrypoint", "/app", "-o", filepath.Join(dir, "multi.tar")}
	for _, arch := range []string{"amd64", "arm64"} {
		p := filepath.Join(dir, arch+".tar")
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		tw := tar.NewWriter(f)
		for _, e := range []struct {
			name string
			mode int64
			body []byte
		}{{"app", 0o755, server}, {"etc/platform", 0o644, []byte(arch + "\n")}} {
			_ = tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: tar.TypeReg, Mode: e.mode, Size: int64(len(e.body))})
			_, _ = tw.Write(e.body)
		}
		_ = tw.WriteHeader(&tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777})
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		args = append(args, "--platform", "linux/"+arch, "--rootfs", p)
	}
	if out, err := exec.Command(c.bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("warren %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return filepath.Join(dir, "multi.tar")
}

// layerOf is the digest of the layer of arch's manifest in a
// multi-platform archive that packTwoPlatformDemo wrote.
func layerOf(t *testing.T, archive, arch string) string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if b, err := io.ReadAll(tr); err == nil && len(b) > 0 && b[0] == '{' {
			files[strings.Replace(h.Name, "blobs/sha256/", "sha256:", 1)] = b
		}
	}
	type desc struct {
		Digest   string `json:"digest"`
		Platform *struct {
			Architecture string `json:"architecture"`
		} `json:"platform"`
	}
	var top, idx struct{ Manifests []desc }
	var man struct{ Layers []desc }
	if json.Unmarshal(files["index.json"], &top) != nil || len(top.Manifests) != 1 || json.Unmarshal(files[top.Manifests[0].Digest], &idx) != nil {
		t.Fatalf("%s is not a two-platform archive", archive)
	}
	for _, m := range idx.Manifests {
		if m.Platform != nil && m.Platform.Architecture == arch && json.Unmarshal(files[m.Digest], &man) == nil && len(man.Layers) == 1 {
			return man.Layers[0].Digest
		}
	}
	t.Fatalf("%s has no %s manifest", archive, arch)
	return ""
}

// nodeFetches sums, over the given managers, the image archive downloads
// nodes asked of them (warren_image_blob_requests_total{caller="node"}).
func nodeFetches(t *testing.T, hs ...*host) int {
	t.Helper()
	const series = `warren_image_blob_requests_total{caller="node"} `
	total := 0
	for _, h := range hs {
		text := mustScrape(t, h)
		found := false
		for _, line := range strings.Split(text, "\n") {
			if v, ok := strings.CutPrefix(line, series); ok {
				var n float64
				if _, err := fmt.Sscanf(v, "%g", &n); err != nil {
					t.Fatalf("%s: %q: %v", h.name, line, err)
				}
				total += int(n)
				found = true
			}
		}
		if !found {
			t.Fatalf("%s /metrics has no %s series", h.name, strings.TrimSpace(series))
		}
	}
	return total
}

func mustExec(t *testing.T, h *host, tk api.Task, args ...string) string {
	t.Helper()
	out, err := h.exec(t, tk, args...)
	if err != nil {
		t.Fatalf("%s: exec %v in task %s: %v\n%s", h.name, args, short(tk.ID), err, out)
	}
	return out
}
