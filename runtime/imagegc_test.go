package runtime

import (
	"reflect"
	"testing"
	"time"
)

func TestImageGC(t *testing.T) {
	g := &ImageGC{Grace: 10 * time.Minute}
	t0 := time.Unix(1000, 0)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	steps := []struct {
		min    int
		images []string
		inUse  []string
		want   []string
	}{
		{0, []string{"a", "b", "c"}, []string{"a"}, nil}, // first sight: all kept
		{5, []string{"a", "b", "c"}, []string{"a", "b"}, nil},
		{10, []string{"a", "b", "c"}, []string{"a"}, []string{"c"}}, // c unused for 10 min
		{14, []string{"a", "b", "d"}, []string{"a"}, nil},           // b unused 9 min; d new
		{15, []string{"a", "b", "d"}, []string{"a"}, []string{"b"}}, // b: 10 min since last use
		{30, []string{"a", "d"}, nil, []string{"a", "d"}},           // a unused since 15, d since 14
		{31, []string{"e"}, []string{"e"}, nil},
	}
	for _, s := range steps {
		in := map[string]bool{}
		for _, n := range s.inUse {
			in[n] = true
		}
		if got := g.Collect(s.images, in, at(s.min)); !reflect.DeepEqual(got, s.want) {
			t.Fatalf("t=%dmin: remove %v, want %v", s.min, got, s.want)
		}
	}
	off := &ImageGC{}
	off.Collect([]string{"a"}, nil, at(0))
	if got := off.Collect([]string{"a"}, nil, at(1000)); got != nil {
		t.Fatalf("grace 0 (off) removed %v", got)
	}
}
