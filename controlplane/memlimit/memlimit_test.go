package memlimit

import (
	"context"
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

const mib = 1 << 20

func TestLimit(t *testing.T) {
	for _, c := range []struct {
		name        string
		live, fixed uint64
		want        int64
	}{
		{"empty heap: the least headroom", 0, 3 * mib, 5 * mib},
		{"small heap: MinHeadroom wins over half", 3 * mib, 4 * mib, 9 * mib},
		{"half the live heap once that is more", 10 * mib, 4 * mib, 19 * mib},
		{"just under the ceiling", Ceiling - 2*mib, 8 * mib, int64(8*mib + Ceiling - 2*mib + (Ceiling-2*mib)/2)},
		{"at the ceiling: no limit", Ceiling, 8 * mib, math.MaxInt64},
		{"a manager at scale: no limit", 2 << 30, 64 * mib, math.MaxInt64},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Limit(c.live, c.fixed); got != c.want {
				t.Errorf("Limit(%d MiB, %d MiB) = %d, want %d", c.live/mib, c.fixed/mib, got, c.want)
			}
		})
	}
}

func TestLimitNeverBelowWhatIsHeld(t *testing.T) {
	// Below what the process holds after a collection the limit would
	// collect on every allocation.
	for live := uint64(0); live < Ceiling; live += mib / 2 {
		for _, fixed := range []uint64{0, mib, 16 * mib} {
			if got := Limit(live, fixed); got < int64(live+fixed+MinHeadroom) {
				t.Fatalf("Limit(%d, %d) = %d: less than live + fixed + MinHeadroom", live, fixed, got)
			}
		}
	}
}

func TestOverridden(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"GOGC": "200"}, true},
		{map[string]string{"GOMEMLIMIT": "1GiB"}, true},
		{map[string]string{"GODEBUG": "gctrace=1"}, false},
	} {
		if got := Overridden(func(k string) string { return c.env[k] }); got != c.want {
			t.Errorf("Overridden(%v) = %v, want %v", c.env, got, c.want)
		}
	}
}

// TestRunFollowsTheHeap: Run sets a limit above the live heap while the
// heap is small, follows it as it grows, and removes it when it ends.
func TestRunFollowsTheHeap(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { Run(ctx); close(stopped) }()
	current := func() int64 { return debug.SetMemoryLimit(-1) }
	waitFor := func(what string, ok func(int64) bool) int64 {
		t.Helper()
		for i := 0; i < 500; i++ {
			runtime.GC()
			if l := current(); ok(l) {
				return l
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("%s: limit %d", what, current())
		return 0
	}
	small := waitFor("a limit for a small heap", func(l int64) bool { return l < math.MaxInt64 })
	if small < MinHeadroom {
		t.Fatalf("limit %d is below MinHeadroom", small)
	}
	keep := make([][]byte, 0, 16)
	for i := 0; i < 16; i++ {
		keep = append(keep, make([]byte, mib)) // 16 MiB more live heap
	}
	waitFor("the limit to follow 16 MiB more live heap", func(l int64) bool { return l >= small+16*mib })
	runtime.KeepAlive(keep)
	cancel()
	<-stopped
	if l := current(); l != math.MaxInt64 {
		t.Fatalf("limit %d left after Run ended", l)
	}
}
