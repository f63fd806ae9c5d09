package manager

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/warrenhq/warren/controlplane/testutil"
)

// TestImageReplicatesToEveryManager runs two real managers in process: an
// image uploaded to one is fetched by the other, recorded as held by both,
// and image rm deletes both copies. The kernel test does the same with a
// manager lost for good (kernel-tests/cluster/images_linux_test.go).
func TestImageReplicatesToEveryManager(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two managers")
	}
	log := zaptest.NewLogger(t)
	base := t.TempDir()
	cfg := func(i int) Config {
		c := Config{DataDir: filepath.Join(base, fmt.Sprint(i)), Logger: log.Named(fmt.Sprint("m", i)), Hostname: fmt.Sprint("m", i)}
		c.AdvertiseAddr = freeAddr(t)
		c.ListenAddr = c.AdvertiseAddr
		return c
	}
	c1 := cfg(1)
	c1.Init = &InitOptions{NodeDownGrace: time.Minute}
	m1 := start(t, c1)
	c2 := cfg(2)
	c2.Join = &JoinOptions{Addr: c1.AdvertiseAddr, Token: m1.m.InitResult().ManagerToken}
	m2 := start(t, c2)
	t.Cleanup(func() { m2.stop(); m1.stop() })
	ctx := context.Background()

	archive := bytes.Repeat([]byte("an image archive "), 4096)
	var digest string
	testutil.Eventually(t, "the upload is accepted", 30*time.Second, func() error {
		uctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		img, err := m1.client(t).UploadImage(uctx, "warren/demo:1", bytes.NewReader(archive))
		if err != nil {
			return err
		}
		digest = img.Digest
		return nil
	})
	blob := func(c Config) string {
		return filepath.Join(c.DataDir, BlobsDir, "sha256", strings.TrimPrefix(digest, "sha256:"))
	}
	testutil.Eventually(t, "both managers hold the image", 30*time.Second, func() error {
		imgs, err := m2.client(t).Images(ctx)
		if err != nil {
			return err
		}
		if len(imgs) != 1 || len(imgs[0].Holders) != 2 {
			return fmt.Errorf("images %+v", imgs)
		}
		return nil
	})
	for _, c := range []Config{c1, c2} {
		if b, err := os.ReadFile(blob(c)); err != nil || !bytes.Equal(b, archive) {
			t.Fatalf("%s's copy: %d bytes, %v", c.Hostname, len(b), err)
		}
	}
	if _, err := m2.client(t).RemoveImage(ctx, "warren/demo:1"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "image rm deletes both copies", 30*time.Second, func() error {
		for _, c := range []Config{c1, c2} {
			if _, err := os.Stat(blob(c)); err == nil {
				return fmt.Errorf("%s still has the blob", c.Hostname)
			}
		}
		return nil
	})
}
