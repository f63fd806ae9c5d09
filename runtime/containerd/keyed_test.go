package containerd

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
)

// TestKeyedMutex: holders of one key never overlap, another key does not
// wait for it, a waiter whose context ends gives up, and a key's lock is
// forgotten when its last user leaves.
func TestKeyedMutex(t *testing.T) {
	var k keyedMutex
	ctx := context.Background()
	var inA, maxA atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock, err := k.lock(ctx, "a")
			if err != nil {
				t.Error(err)
				return
			}
			n := inA.Add(1)
			for {
				m := maxA.Load()
				if n <= m || maxA.CompareAndSwap(m, n) {
					break
				}
			}
			inA.Add(-1)
			unlock()
		}()
	}
	held, err := k.lock(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	other, err := k.lock(ctx, "b") // not held up by a
	if err != nil {
		t.Fatal(err)
	}
	other()
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := k.lock(gone, "a"); err == nil {
		t.Error("lock of a held key with an ended context succeeded")
	}
	held()
	wg.Wait()
	if m := maxA.Load(); m != 1 {
		t.Errorf("%d holders of one key at once, want 1", m)
	}
	if n := len(k.locks); n != 0 {
		t.Errorf("%d locks remembered after every user left, want 0", n)
	}
}
