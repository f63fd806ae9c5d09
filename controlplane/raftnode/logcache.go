package raftnode

import (
	"sync"

	"github.com/hashicorp/raft"
)

// Log cache bounds. raft reads recent entries back to replicate them and
// to apply them on followers; hashicorp/raft's LogCache keeps the last 512
// whatever their size, and a plan is up to MaxEntryBytes: at 500 nodes ×
// 20 tasks the cached plans were the largest thing on the leader's heap
// after the store (79 MB of 283). Entries past either bound are read from
// the log store, which has them all.
const (
	logCacheEntries = 512
	logCacheBytes   = 32 << 20
)

// logCache keeps the most recent entries of store in memory, at most
// entries of them and at most bytes of their data (an entry larger than
// bytes alone is not kept). It caches only what store accepted, a run of
// consecutive indexes; anything else resets it.
type logCache struct {
	raft.LogStore
	maxEntries, maxBytes int

	mu    sync.Mutex
	logs  []*raft.Log // consecutive indexes, oldest first
	bytes int
}

func newLogCache(store raft.LogStore, entries, bytes int) *logCache {
	return &logCache{LogStore: store, maxEntries: entries, maxBytes: bytes}
}

func (c *logCache) GetLog(index uint64, log *raft.Log) error {
	c.mu.Lock()
	if n := len(c.logs); n > 0 && index >= c.logs[0].Index && index <= c.logs[n-1].Index {
		*log = *c.logs[index-c.logs[0].Index]
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	return c.LogStore.GetLog(index, log)
}

func (c *logCache) StoreLog(log *raft.Log) error {
	return c.StoreLogs([]*raft.Log{log})
}

func (c *logCache) StoreLogs(logs []*raft.Log) error {
	if err := c.LogStore.StoreLogs(logs); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range logs {
		c.add(l)
	}
	return nil
}

// add appends l, evicting the oldest entries past the bounds.
func (c *logCache) add(l *raft.Log) {
	if n := len(c.logs); n > 0 && l.Index != c.logs[n-1].Index+1 {
		c.reset()
	}
	if len(l.Data) > c.maxBytes {
		c.reset() // not kept: the run of cached indexes ends before it
		return
	}
	c.logs = append(c.logs, l)
	c.bytes += len(l.Data)
	drop := 0
	for len(c.logs)-drop > c.maxEntries || c.bytes > c.maxBytes {
		c.bytes -= len(c.logs[drop].Data)
		c.logs[drop] = nil
		drop++
	}
	if drop > 0 {
		c.logs = c.logs[drop:]
	}
}

func (c *logCache) reset() {
	c.logs, c.bytes = nil, 0
}

// DeleteRange forgets every cached entry (raft deletes a prefix after a
// snapshot, a suffix when a follower's log conflicts with the leader's).
func (c *logCache) DeleteRange(min, max uint64) error {
	c.mu.Lock()
	c.reset()
	c.mu.Unlock()
	return c.LogStore.DeleteRange(min, max)
}
