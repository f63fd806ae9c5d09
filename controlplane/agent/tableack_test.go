package agent

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// gateManager holds every heartbeat until the test releases it, recording
// the table index each carried.
type gateManager struct {
	unusedManager
	mu      sync.Mutex
	indexes []uint64
	arrived chan uint64
	release chan struct{}
}

func (m *gateManager) Register(ctx context.Context, reg api.NodeRegistration) error {
	m.mu.Lock()
	m.indexes = append(m.indexes, reg.TableIndex)
	m.mu.Unlock()
	m.arrived <- reg.TableIndex
	select {
	case <-m.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestTableMoveBeatWaitsForASlot: the service table moves while every
// heartbeat slot holds a beat that has not answered. The beat carrying the
// new index goes out as soon as one slot frees, not on the next tick (an
// hour away here): the managers' drains wait for it. It once waited for
// the tick, which held rollouts' drains for seconds on loaded managers.
func TestTableMoveBeatWaitsForASlot(t *testing.T) {
	m := &gateManager{unusedManager: unusedManager{t}, arrived: make(chan uint64, 16), release: make(chan struct{})}
	rec := &recorder{}
	a, err := New(Config{NodeID: "n1", DataDir: t.TempDir(), Manager: m, Executor: rec, Network: rec,
		Registration: func() api.NodeRegistration { return api.NodeRegistration{} },
		Heartbeat:    time.Hour, Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.heartbeatLoop(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	timeout := time.After(20 * time.Second)
	next := func() uint64 {
		select {
		case i := <-m.arrived:
			return i
		case <-timeout:
			t.Fatal("no heartbeat")
			return 0
		}
	}
	// The first beat, then table moves fill the other slots.
	next()
	for i := uint64(1); i < maxBeats; i++ {
		a.setTable(10 + i)
		if got := next(); got != 10+i {
			t.Fatalf("beat carries table %d, want %d", got, 10+i)
		}
	}
	// Every slot is taken: this move cannot go out yet.
	a.setTable(42)
	select {
	case i := <-m.arrived:
		t.Fatalf("a beat (table %d) went out with every slot taken", i)
	case <-time.After(50 * time.Millisecond):
	}
	m.release <- struct{}{} // one beat answers
	if got := next(); got != 42 {
		t.Fatalf("after a slot freed the beat carries table %d, want 42", got)
	}
	close(m.release)
}
