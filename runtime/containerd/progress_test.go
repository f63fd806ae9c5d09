package containerd

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/warrenhq/warren/controlplane/api"
)

func TestLayerBytes(t *testing.T) {
	a, b, c := digest.FromString("a"), digest.FromString("b"), digest.FromString("c")
	layers := []ocispec.Descriptor{{Digest: a, Size: 1000}, {Digest: b, Size: 2000}, {Digest: c, Size: 500}}
	none := func(digest.Digest) bool { return false }
	only := func(ds ...digest.Digest) func(digest.Digest) bool {
		return func(d digest.Digest) bool {
			for _, x := range ds {
				if x == d {
					return true
				}
			}
			return false
		}
	}
	for _, tc := range []struct {
		name        string
		layers      []ocispec.Descriptor
		active      []content.Status
		read        map[digest.Digest]int64
		stored      func(digest.Digest) bool
		done, total int64
	}{
		{"no layers known yet", nil, nil, nil, none, 0, 0},
		{"nothing fetched", layers, nil, nil, none, 0, 3500},
		{"downloads in flight by ref", layers, []content.Status{{Ref: "layer-" + a.String(), Offset: 400}, {Ref: "layer-" + b.String(), Offset: 100}}, nil, none, 500, 3500},
		{"a ref with another prefix", layers, []content.Status{{Ref: "pull-x-layer-" + b.String(), Offset: 700}}, nil, none, 700, 3500},
		{"by expected digest", layers, []content.Status{{Ref: "whatever", Expected: c, Offset: 50}}, nil, none, 50, 3500},
		{"stored layers count whole", layers, []content.Status{{Ref: "layer-" + b.String(), Offset: 1000}}, nil, only(a, c), 2500, 3500},
		{"an ingest of another image is not counted", layers, []content.Status{{Ref: "layer-" + digest.FromString("other").String(), Offset: 900}}, nil, none, 0, 3500},
		{"an offset past the size is capped", layers, []content.Status{{Ref: "layer-" + c.String(), Offset: 9000}}, nil, none, 500, 3500},
		{"all stored", layers, nil, nil, only(a, b, c), 3500, 3500},
		{"bytes read before the store's offset moved", layers, []content.Status{{Ref: "layer-" + a.String(), Offset: 0}}, map[digest.Digest]int64{a: 300}, none, 300, 3500},
		{"the store's offset further than this pull's read", layers, []content.Status{{Ref: "layer-" + a.String(), Offset: 800}}, map[digest.Digest]int64{a: 300}, none, 800, 3500},
		{"read whole, not yet committed", layers, nil, map[digest.Digest]int64{c: 500}, none, 500, 3500},
		{"read without an ingest listed", layers, nil, map[digest.Digest]int64{b: 1500}, only(a), 2500, 3500},
	} {
		done, total := layerBytes(tc.layers, tc.active, tc.read, tc.stored)
		if done != tc.done || total != tc.total {
			t.Errorf("%s: %d/%d, want %d/%d", tc.name, done, total, tc.done, tc.total)
		}
	}
}

func TestPullFollowers(t *testing.T) {
	var f pullFollowers
	var got1, got2 []api.PullProgress
	stop1 := f.follow("img", "reg/web:v1", func(p api.PullProgress) { got1 = append(got1, p) })
	stop2 := f.follow("img", "reg/web@sha256:x", func(p api.PullProgress) { got2 = append(got2, p) })
	defer f.follow("img", "x", nil)() // no function: nothing followed, nothing to stop
	f.publish("other", 1, 2)
	f.publish("img", 10, 100)
	stop1()
	f.publish("img", 20, 100)
	stop2()
	f.publish("img", 30, 100)
	if len(got1) != 1 || got1[0] != (api.PullProgress{Ref: "reg/web:v1", Done: 10, Total: 100}) {
		t.Errorf("first follower saw %+v", got1)
	}
	if len(got2) != 2 || got2[1] != (api.PullProgress{Ref: "reg/web@sha256:x", Done: 20, Total: 100}) {
		t.Errorf("second follower saw %+v", got2)
	}
	if len(f.by) != 0 {
		t.Errorf("followers left after every stop: %v", f.by)
	}
}

// blobFetcher serves blobs from memory; its readers seek, as the docker
// fetcher's do.
type blobFetcher map[digest.Digest][]byte

func (f blobFetcher) Fetch(_ context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	return nopSeekCloser{bytes.NewReader(f[desc.Digest])}, nil
}

type nopSeekCloser struct{ *bytes.Reader }

func (nopSeekCloser) Close() error { return nil }

func TestCountingFetcher(t *testing.T) {
	blob := bytes.Repeat([]byte("x"), 1000)
	d := digest.FromBytes(blob)
	w := &pullWatch{}
	f := countingFetcher{blobFetcher{d: blob}, w}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: d, Size: 1000}
	rc, err := f.Fetch(context.Background(), desc)
	if err != nil {
		t.Fatal(err)
	}
	// A resumed download: containerd seeks to what the store holds.
	s, ok := rc.(io.Seeker)
	if !ok {
		t.Fatal("the counting reader hides the fetcher's Seeker: resumed downloads would start again")
	}
	if _, err := s.Seek(400, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, rc, 250); err != nil {
		t.Fatal(err)
	}
	if got := w.read[d].Load(); got != 650 {
		t.Errorf("position after a seek to 400 and 250 bytes read: %d, want 650", got)
	}
	// A config is not a layer: not counted.
	cfg := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromString("c")}
	if _, err := f.Fetch(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if _, ok := w.read[cfg.Digest]; ok {
		t.Error("a config's download was counted as a layer's")
	}
}
