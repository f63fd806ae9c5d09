package ktest

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// CacheRoot keeps what kernel tests build slowly and reuse between runs on a
// machine: root filesystems made by mmdebstrap from Debian's packages.
const CacheRoot = "/var/cache/warren-test"

// CacheDir is a directory under CacheRoot for name, keyed by the contents
// of the files that say what goes into it (a build script and what it
// copies in): a change to any of them starts a new, empty directory, so a
// stale build is never reused.
func CacheDir(t testing.TB, name string, files ...string) string {
	t.Helper()
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("cache key: %v", err)
		}
		h.Write([]byte(filepath.Base(f) + "\x00"))
		h.Write(b)
		h.Write([]byte{0})
	}
	dir := filepath.Join(CacheRoot, name+"-"+hex.EncodeToString(h.Sum(nil))[:16])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("cache dir: %v", err)
	}
	return dir
}

// DebianImages runs an image build script (see docs/examples/pgstack/
// build-images.sh) as `script CACHE OUT` with WARREN=bin: it makes root
// filesystems with mmdebstrap into the cache, once per machine and script
// version, and packs them into image archives in out. The script's own
// directory is part of the cache key. It returns how long the build took.
func DebianImages(t testing.TB, script, bin, out string, keyFiles ...string) time.Duration {
	t.Helper()
	Binary(t, "mmdebstrap")
	cache := CacheDir(t, filepath.Base(filepath.Dir(script)), append([]string{script}, keyFiles...)...)
	begin := time.Now()
	cmd := exec.Command("bash", script, cache, out)
	cmd.Env = append(os.Environ(), "WARREN="+bin)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build images (%s %s %s): %v\n%s", script, cache, out, err, b)
	}
	return time.Since(begin)
}
