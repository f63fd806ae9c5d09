//go:build linux

package runtimetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	wrt "github.com/warrenhq/warren/runtime"
	ctrd "github.com/warrenhq/warren/runtime/containerd"
)

// TestImages exports the demo image, removes it, and gets it back through
// the ImageFetcher (what a node does when a manager holds the archive).
func TestImages(t *testing.T) {
	f := newFixture(t)
	ex := f.executor()
	ctx := context.Background()

	has := func(ex *ctrd.Executor) bool {
		imgs, err := ex.ListImages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range imgs {
			if im.Name == "docker.io/warren/demo:v1" {
				return true
			}
		}
		return false
	}
	if !has(ex) {
		t.Fatal("imported image not listed")
	}
	var archive bytes.Buffer
	if err := ex.ExportArchive(ctx, demoRef, &archive); err != nil {
		t.Fatal(err)
	}
	if err := ex.RemoveImage(ctx, demoRef); err != nil {
		t.Fatal(err)
	}
	if has(ex) {
		t.Fatal("image still listed after RemoveImage")
	}

	fetched := 0
	ex2, err := ctrd.New(ctrd.Options{
		Address: f.ctd.Socket, Namespace: f.ns, CgroupParent: f.parent, DisablePull: true,
		ImageFetcher: func(_ context.Context, ref string) (io.ReadCloser, error) {
			fetched++
			if ref != demoRef {
				return nil, errors.New("unknown image")
			}
			return io.NopCloser(bytes.NewReader(archive.Bytes())), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ex2.Close()
	img, err := ex2.EnsureImage(ctx, demoRef)
	if err != nil {
		t.Fatal(err)
	}
	if img.Name() != "docker.io/warren/demo:v1" || fetched != 1 || !has(ex2) {
		t.Fatalf("after fetch: name %s fetched %d listed %v", img.Name(), fetched, has(ex2))
	}
	// Present now: no second fetch.
	if _, err := ex2.EnsureImage(ctx, demoRef); err != nil || fetched != 1 {
		t.Fatalf("second ensure: %v, fetched %d", err, fetched)
	}
	// Neither local nor fetchable, and pulls disabled: a typed error.
	if _, err := ex2.EnsureImage(ctx, "warren/missing:v9"); !errors.Is(err, wrt.ErrNotFound) {
		t.Fatalf("missing image: %v", err)
	}
}
