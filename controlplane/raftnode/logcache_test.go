package raftnode

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hashicorp/raft"
)

// countingStore counts the reads that reach the store under the cache.
type countingStore struct {
	raft.LogStore
	reads int
	fail  error
}

func (s *countingStore) GetLog(i uint64, l *raft.Log) error {
	s.reads++
	return s.LogStore.GetLog(i, l)
}

func (s *countingStore) StoreLogs(logs []*raft.Log) error {
	if s.fail != nil {
		return s.fail
	}
	return s.LogStore.StoreLogs(logs)
}

func entry(i uint64, size int) *raft.Log {
	return &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: bytes.Repeat([]byte{byte(i)}, size)}
}

// The cache answers the most recent entries within both bounds from
// memory and everything else from the store, and every answer is the
// entry stored.
func TestLogCacheBounds(t *testing.T) {
	cases := []struct {
		name           string
		entries, bytes int
		sizes          []int // entry i+1 has sizes[i] bytes; stored one by one
		cached         []uint64
	}{
		{"by count", 3, 1 << 20, []int{10, 10, 10, 10, 10}, []uint64{3, 4, 5}},
		{"by bytes", 100, 25, []int{10, 10, 10, 10, 10}, []uint64{4, 5}},
		{"a large entry evicts the oldest ones", 100, 25, []int{5, 5, 5, 20}, []uint64{3, 4}},
		{"an entry over the bound alone is not kept", 100, 25, []int{5, 5, 30}, nil},
		{"and the run starts again after it", 100, 25, []int{5, 30, 5, 5}, []uint64{3, 4}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := &countingStore{LogStore: raft.NewInmemStore()}
			c := newLogCache(st, tc.entries, tc.bytes)
			for i, size := range tc.sizes {
				if err := c.StoreLog(entry(uint64(i+1), size)); err != nil {
					t.Fatal(err)
				}
			}
			cached := map[uint64]bool{}
			for _, i := range tc.cached {
				cached[i] = true
			}
			for i := uint64(1); i <= uint64(len(tc.sizes)); i++ {
				before := st.reads
				var l raft.Log
				if err := c.GetLog(i, &l); err != nil {
					t.Fatalf("entry %d: %v", i, err)
				}
				if want := entry(i, tc.sizes[i-1]); l.Index != i || !bytes.Equal(l.Data, want.Data) {
					t.Fatalf("entry %d: got index %d, %d bytes", i, l.Index, len(l.Data))
				}
				if fromCache := st.reads == before; fromCache != cached[i] {
					t.Errorf("entry %d: from the cache %v, want %v", i, fromCache, cached[i])
				}
			}
		})
	}
}

// A batch that does not follow the cached run, a range deleted, or a
// write the store refused: the cache holds nothing it should not.
func TestLogCacheResets(t *testing.T) {
	st := &countingStore{LogStore: raft.NewInmemStore()}
	c := newLogCache(st, 10, 1<<20)
	if err := c.StoreLogs([]*raft.Log{entry(1, 4), entry(2, 4), entry(3, 4)}); err != nil {
		t.Fatal(err)
	}
	read := func(i uint64) (fromCache bool, err error) {
		before := st.reads
		var l raft.Log
		err = c.GetLog(i, &l)
		return st.reads == before, err
	}
	if hit, _ := read(2); !hit {
		t.Fatal("entry 2 just stored was not cached")
	}
	// A follower's log conflicting with the leader's: raft deletes the
	// suffix and stores the leader's entries from there.
	if err := c.DeleteRange(2, 3); err != nil {
		t.Fatal(err)
	}
	if hit, err := read(2); hit || !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("entry 2 after its deletion: from the cache %v, error %v", hit, err)
	}
	if err := c.StoreLogs([]*raft.Log{entry(5, 4)}); err != nil { // not after anything cached
		t.Fatal(err)
	}
	if hit, _ := read(5); !hit {
		t.Fatal("entry 5 was not cached")
	}
	if err := c.StoreLogs([]*raft.Log{entry(7, 4)}); err != nil { // a gap: 6 is missing
		t.Fatal(err)
	}
	if hit, _ := read(5); hit {
		t.Error("entry 5 still served from the cache after a gap")
	}
	st.fail = errors.New("disk full")
	if err := c.StoreLogs([]*raft.Log{entry(8, 4)}); err == nil {
		t.Fatal("the store's error was not returned")
	}
	if hit, err := read(8); hit || err == nil {
		t.Errorf("entry 8, which the store refused: from the cache %v, error %v", hit, err)
	}
}
