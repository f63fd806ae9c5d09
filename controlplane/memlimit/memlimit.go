// Package memlimit keeps the daemon's soft memory limit
// (debug.SetMemoryLimit) a step above its live heap, so that a node with a
// small heap — a worker, an edge manager — holds about half a live heap of
// garbage instead of a whole one, while a manager at scale runs exactly as
// Go's defaults would.
//
// With GOGC=100 alone the collector lets the heap grow to twice what
// survived the last collection, and the scavenger hands pages back to the
// OS only slowly, so a daemon with a 5 MiB live heap held 15–20 MiB. A
// memory limit paces the collector and the scavenger both. A fixed limit
// would starve a manager whose live heap outgrows it (the collector runs
// back to back, up to half the CPU); this limit follows the live heap,
// re-derived after every collection, and is off entirely once the live
// heap passes Ceiling, where GOGC=100 alone decides.
//
// The package owns only that; it imports nothing of Warren's.
package memlimit

import (
	"context"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

const (
	// Ceiling is the live heap above which there is no limit: at that size
	// the collector's work per cycle is what costs, and halving the garbage
	// would double the cycles of a busy manager.
	Ceiling = 64 << 20
	// MinHeadroom is the least garbage allowed between collections, so a
	// tiny live heap does not collect on every few allocations. 2 MiB, not
	// Go's own smallest heap goal of 4 MB: a worker's daemon (live heap
	// ~4 MiB at 10 tasks) then holds ~1.2 MiB less (bench/node), for a
	// collection of a few-MiB heap — about a millisecond — every 2 MiB
	// allocated instead of every 4.
	MinHeadroom = 2 << 20
)

// Limit is the memory limit for a process with live bytes of live heap and
// fixed bytes of memory the collector cannot free (stacks, runtime
// metadata, heap fragmentation): room for half the live heap again in
// garbage, at least MinHeadroom, and no limit (math.MaxInt64) at or above
// Ceiling.
func Limit(live, fixed uint64) int64 {
	if live >= Ceiling {
		return math.MaxInt64
	}
	headroom := max(live/2, MinHeadroom)
	return int64(fixed + live + headroom)
}

// Overridden reports whether the operator set the collector up through the
// environment (GOGC or GOMEMLIMIT); that choice wins over this package.
func Overridden(getenv func(string) string) bool {
	return getenv("GOMEMLIMIT") != "" || getenv("GOGC") != ""
}

// Run sets the limit after every garbage collection until ctx ends, then
// removes it. It does nothing when Overridden.
func Run(ctx context.Context) {
	if Overridden(os.Getenv) {
		return
	}
	gcs := make(chan struct{}, 1)
	var done atomic.Bool
	afterGC(gcs, &done)
	defer func() {
		done.Store(true)
		debug.SetMemoryLimit(math.MaxInt64)
	}()
	samples := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
	}
	for {
		metrics.Read(samples)
		live := samples[0].Value.Uint64()
		// What the runtime holds apart from objects and free pages:
		// stacks, metadata, fragmentation. Objects beyond the live heap
		// are garbage the next collection frees.
		held := samples[1].Value.Uint64() - samples[2].Value.Uint64() - samples[3].Value.Uint64()
		objects := samples[4].Value.Uint64()
		fixed := uint64(0)
		if held > objects {
			fixed = held - objects
		}
		debug.SetMemoryLimit(Limit(live, fixed))
		select {
		case <-ctx.Done():
			return
		case <-gcs:
		}
	}
}

// afterGC signals gcs (without blocking) after every garbage collection
// until done: a finalizer runs once its object was found unreachable, that
// is after a collection, and arms the next one.
func afterGC(gcs chan<- struct{}, done *atomic.Bool) {
	s := &sentinel{}
	runtime.SetFinalizer(s, func(*sentinel) {
		if done.Load() {
			return
		}
		select {
		case gcs <- struct{}{}:
		default:
		}
		afterGC(gcs, done)
	})
}

// sentinel is large enough not to be batched with other small objects by
// the tiny allocator, whose objects may never be finalized.
type sentinel struct{ _ [16]byte }
