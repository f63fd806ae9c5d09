package testutil

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// failRecorder records Fatalf instead of ending the test, so the failing
// paths of Eventually can be checked.
type failRecorder struct {
	testing.TB
	msg string
}

func (f *failRecorder) Helper() {}
func (f *failRecorder) Fatalf(format string, args ...any) {
	f.msg = strings.TrimSpace(fmt.Sprintf(format, args...))
	panic(f)
}

func run(tb testing.TB, body func(testing.TB)) (msg string) {
	fr := &failRecorder{TB: tb}
	defer func() {
		if r := recover(); r != nil {
			if r != fr {
				panic(r)
			}
			msg = fr.msg
		}
	}()
	body(fr)
	return ""
}

func TestEventually(t *testing.T) {
	n := 0
	Eventually(t, "third call", time.Minute, func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("polled %d times, want 3", n)
	}

	msg := run(t, func(tb testing.TB) {
		Eventually(tb, "never", 0, func() error { return errors.New("still broken") })
	})
	if !strings.Contains(msg, "never") || !strings.Contains(msg, "still broken") {
		t.Fatalf("failure message %q names neither the wait nor the last error", msg)
	}

	calls := 0
	msg = run(t, func(tb testing.TB) {
		Eventually(tb, "stopped", time.Minute, func() error { calls++; return Stop(errors.New("hopeless")) })
	})
	if calls != 1 || !strings.Contains(msg, "hopeless") {
		t.Fatalf("Stop: %d calls, message %q; want one call and the error", calls, msg)
	}
}
