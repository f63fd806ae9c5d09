package manager

import (
	"reflect"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

func TestPlanImages(t *testing.T) {
	now := time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC)
	old, fresh := now.Add(-time.Hour), now.Add(-time.Second)
	const a, b = "sha256:aaaa", "sha256:bbbb"
	img := func(name, digest string, holders ...string) api.Image {
		return api.Image{Name: name, Digest: digest, Holders: holders}
	}
	for _, c := range []struct {
		name string
		in   imageView
		want imageWork
	}{
		{
			name: "a manager without the blob fetches it",
			in:   imageView{Images: []api.Image{img("web", a, "m1")}, Members: []string{"m1", "m2"}, Self: "m2"},
			want: imageWork{Hold: []string{"web"}},
		},
		{
			name: "a holder with its blob has nothing to do",
			in:   imageView{Images: []api.Image{img("web", a, "m1", "m2")}, Members: []string{"m1", "m2"}, Self: "m2", Blobs: map[string]time.Time{a: old}},
		},
		{
			name: "a blob on disk but not recorded (restarted, re-loaded) is only claimed",
			in:   imageView{Images: []api.Image{img("web", a, "m1")}, Members: []string{"m1", "m2"}, Self: "m2", Blobs: map[string]time.Time{a: old}},
			want: imageWork{Hold: []string{"web"}},
		},
		{
			name: "recorded as holder but the blob is gone: fetched again",
			in:   imageView{Images: []api.Image{img("web", a, "m1", "m2")}, Members: []string{"m1", "m2"}, Self: "m2"},
			want: imageWork{Hold: []string{"web"}},
		},
		{
			name: "two names of one archive: fetched once, the other claimed next round",
			in:   imageView{Images: []api.Image{img("web:2", a, "m1"), img("web:1", a, "m1")}, Members: []string{"m1", "m2"}, Self: "m2"},
			want: imageWork{Hold: []string{"web:1"}},
		},
		{
			name: "a name being fetched is not started twice, nor its archive under another name",
			in: imageView{Images: []api.Image{img("web:1", a, "m1"), img("web:2", a, "m1"), img("db", b, "m1")}, Members: []string{"m1", "m2"}, Self: "m2",
				Busy: map[string]bool{"web:1": true}},
			want: imageWork{Hold: []string{"db"}},
		},
		{
			name: "a failed fetch waits for its retry time and says when to wake",
			in: imageView{Images: []api.Image{img("web", a, "m1"), img("db", b, "m1")}, Members: []string{"m1", "m2"}, Self: "m2", Now: now,
				Retry: map[string]time.Time{"web": now.Add(4 * time.Second), "db": now.Add(-time.Second)}},
			want: imageWork{Hold: []string{"db"}, Wake: now.Add(4 * time.Second)},
		},
		{
			name: "a blob no image names goes once the grace has passed",
			in: imageView{Images: []api.Image{img("web", a, "m1", "m2")}, Members: []string{"m1", "m2"}, Self: "m2", Now: now, Grace: time.Minute,
				Blobs: map[string]time.Time{a: old, b: old, "sha256:cccc": fresh}},
			want: imageWork{Remove: []string{b}},
		},
		{
			name: "after image rm every manager deletes its copy",
			in:   imageView{Members: []string{"m1", "m2"}, Self: "m1", Leader: true, Now: now, Grace: time.Minute, Blobs: map[string]time.Time{a: old}},
			want: imageWork{Remove: []string{a}},
		},
		{
			name: "a blob named in the last round and no more goes at once, without waiting for the grace",
			in: imageView{Members: []string{"m1", "m2"}, Self: "m2", Now: now, Grace: time.Minute,
				Blobs: map[string]time.Time{a: fresh}, Seen: map[string]time.Time{a: now.Add(-100 * time.Millisecond)}},
			want: imageWork{Remove: []string{a}},
		},
		{
			// rm, then the same archive loaded again: the new blob is on
			// disk before its raft write; it is newer than the last time
			// the old one was named, so the grace protects it.
			name: "the same archive loaded again right after rm is kept",
			in: imageView{Members: []string{"m1"}, Self: "m1", Leader: true, Now: now, Grace: time.Minute,
				Blobs: map[string]time.Time{a: now.Add(-50 * time.Millisecond)}, Seen: map[string]time.Time{a: now.Add(-100 * time.Millisecond)}},
		},
		{
			name: "the leader drops holders that are no longer managers",
			in: imageView{Images: []api.Image{img("web", a, "m1", "gone", "m2")}, Members: []string{"m1", "m2"}, Self: "m1", Leader: true,
				Blobs: map[string]time.Time{a: old}},
			want: imageWork{Drop: map[string][]string{"web": {"gone"}}},
		},
		{
			name: "a follower drops nobody",
			in:   imageView{Images: []api.Image{img("web", a, "m1", "gone", "m2")}, Members: []string{"m1", "m2"}, Self: "m2", Blobs: map[string]time.Time{a: old}},
		},
		{
			name: "without the membership nobody is dropped",
			in:   imageView{Images: []api.Image{img("web", a, "m1", "gone")}, Self: "m1", Leader: true, Blobs: map[string]time.Time{a: old}},
		},
		{
			name: "a manager removed from raft fetches nothing",
			in:   imageView{Images: []api.Image{img("web", a, "m1")}, Members: []string{"m1"}, Self: "m2"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := planImages(c.in)
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("planImages:\n got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestImageRetryBacksOff(t *testing.T) {
	var got []time.Duration
	for n := 1; n <= 8; n++ {
		got = append(got, imageRetry(n))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("retry waits %v, want %v", got, want)
	}
}
