package runtime

import (
	"context"
	"errors"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// Clock is every time source of the Worker and its controllers: status
// timestamps, restart backoff, health intervals and start periods, the stop
// grace and housekeeping. The real one is SystemClock; tests pass
// fake.Clock so that each timer fires when the test advances time, not when
// the machine gets round to it.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer the Worker uses.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// SystemClock is Clock on the machine's time.
type SystemClock struct{}

// Now implements Clock.
func (SystemClock) Now() time.Time { return time.Now() }

// NewTimer implements Clock.
func (SystemClock) NewTimer(d time.Duration) Timer { return systemTimer{time.NewTimer(d)} }

type systemTimer struct{ t *time.Timer }

func (t systemTimer) C() <-chan time.Time { return t.t.C }
func (t systemTimer) Stop() bool          { return t.t.Stop() }

// DefaultStopGrace is how long a stopping task may take to exit after its
// stop signal before it is killed, when its spec sets no grace. The CLI
// shows it as the default of --stop-grace-period.
const DefaultStopGrace = 10 * time.Second

// StopGrace is the grace of a container spec, with the default.
func StopGrace(c api.ContainerSpec) time.Duration {
	if g := c.StopGrace.D(); g > 0 {
		return g
	}
	return DefaultStopGrace
}

// errStopped is sleep's answer when its stop channel closed first.
var errStopped = errors.New("stopped")

// sleep waits d on clk. It returns ctx's error if ctx ends first and
// errStopped if stop (which may be nil) closes first.
func sleep(ctx context.Context, clk Clock, d time.Duration, stop <-chan struct{}) error {
	t := clk.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-stop:
		return errStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

// withTimeout is context.WithTimeout on clk.
func withTimeout(parent context.Context, clk Clock, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	t := clk.NewTimer(d)
	go func() {
		select {
		case <-t.C():
			cancel(context.DeadlineExceeded)
		case <-ctx.Done():
		}
	}()
	// The timer stops before cancel returns: a caller done with ctx leaves
	// nothing armed behind it.
	return ctx, func() { t.Stop(); cancel(context.Canceled) }
}
