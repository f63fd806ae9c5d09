package runtime

import (
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

func TestPullThrottle(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := func(done int64) api.PullProgress { return api.PullProgress{Ref: "r", Done: done, Total: 100} }
	steps := []struct {
		at   time.Duration
		pr   api.PullProgress
		want bool
	}{
		{0, p(0), true},                        // the first sample says a pull began
		{100 * time.Millisecond, p(10), false}, // too soon
		{900 * time.Millisecond, p(20), false},
		{time.Second, p(30), true}, // a second after the last report
		{1500 * time.Millisecond, p(30), false},
		{3 * time.Second, p(30), false},        // unchanged: a stalled pull is not re-reported
		{3100 * time.Millisecond, p(40), true}, // changed after a stall: at once
		{3200 * time.Millisecond, p(100), false},
		{5 * time.Second, p(100), true},
	}
	th := &pullThrottle{every: time.Second}
	for i, s := range steps {
		if got := th.pass(t0.Add(s.at), s.pr); got != s.want {
			t.Errorf("step %d (%v, done %d): pass %v, want %v", i, s.at, s.pr.Done, got, s.want)
		}
	}
}
