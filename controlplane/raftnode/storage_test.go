package raftnode

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// fullDisk is a log store whose writes fail while full is set.
type fullDisk struct {
	*raft.InmemStore
	full bool
}

func (f *fullDisk) StoreLogs(logs []*raft.Log) error {
	if f.full {
		return fmt.Errorf("write /data/raft/raft.db: %w", syscall.ENOSPC)
	}
	return f.InmemStore.StoreLogs(logs)
}

func (f *fullDisk) StoreLog(l *raft.Log) error { return f.StoreLogs([]*raft.Log{l}) }

// A failed log write names itself as ErrStorage with the disk's own error
// (not the cache's flattened text), is
// remembered for the "no leader" answers that follow, and is forgotten by
// the first write that works again.
func TestWatchedLogsRemembersTheLastFailure(t *testing.T) {
	// Stacked as New stacks them: the cache between the two, flattening
	// the disk's error into text.
	disk := &fullDisk{InmemStore: raft.NewInmemStore()}
	below := &lastErrorLogs{LogStore: disk}
	cache, err := raft.NewLogCache(16, below)
	if err != nil {
		t.Fatal(err)
	}
	w := &watchedLogs{LogStore: cache, below: below}
	n := &Node{cfg: Config{NoQuorumWait: 1500 * time.Millisecond}, watched: w}
	steps := []struct {
		full    bool
		wantErr bool
	}{{false, false}, {true, true}, {true, true}, {false, false}}
	for i, s := range steps {
		disk.full = s.full
		err := w.StoreLogs([]*raft.Log{{Index: uint64(i + 1), Type: raft.LogCommand}})
		if (err != nil) != s.wantErr {
			t.Fatalf("step %d (full %v): err %v", i, s.full, err)
		}
		noLeader := n.noLeader()
		if !errors.Is(noLeader, ErrNoQuorum) {
			t.Errorf("step %d: %v does not wrap ErrNoQuorum", i, noLeader)
		}
		if !s.wantErr {
			if w.lastFailure() != nil || errors.Is(noLeader, ErrStorage) {
				t.Errorf("step %d: a working disk is still blamed: %v", i, noLeader)
			}
			continue
		}
		for _, e := range []error{err, w.lastFailure(), noLeader} {
			if !errors.Is(e, ErrStorage) || !errors.Is(e, syscall.ENOSPC) {
				t.Errorf("step %d: %v does not wrap ErrStorage and ENOSPC", i, e)
			}
			if !strings.Contains(e.Error(), "raft log write failed: write /data/raft/raft.db: no space left on device") {
				t.Errorf("step %d: %q does not name the disk", i, e)
			}
		}
	}
}
