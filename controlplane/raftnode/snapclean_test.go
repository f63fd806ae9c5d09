package raftnode_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/raftnode"
	"github.com/warrenhq/warren/controlplane/raftnode/raftnodetest"
)

// TestUnfinishedSnapshotRemovedOnStart: a manager killed while raft wrote a
// snapshot leaves <dir>/snapshots/<id>.tmp; the next start removes it (raft
// itself never would) and restores from the last finished snapshot and the
// log, and a plain file with the suffix is not raft's and stays.
func TestUnfinishedSnapshotRemovedOnStart(t *testing.T) {
	c := raftnodetest.NewCluster(t, 3, func(cfg *raftnode.Config) {
		cfg.SnapshotThreshold = 8
		cfg.TrailingLogs = 4
		cfg.SnapshotInterval = 50 * time.Millisecond
	})
	c.Form()
	c.Leader(10 * time.Second)
	var idx uint64
	for i := 0; i < 30; i++ {
		idx = c.ApplyAnywhere(raftnodetest.PutTask(fmt.Sprintf("t-%03d", i)), 10*time.Second)
	}
	c.WaitAll(idx, 10*time.Second)
	m := c.Members[1]
	c.Stop(1)
	snaps := filepath.Join(m.Dir, "snapshots")
	half := filepath.Join(snaps, "9-999-1.tmp")
	if err := os.MkdirAll(half, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(half, "state.bin"), []byte("half a snapshot"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(snaps, "notes.tmp")
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c.Start(1)
	if _, err := os.Stat(half); !os.IsNotExist(err) {
		t.Errorf("the unfinished snapshot is still there after a start (stat: %v)", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("a file that is not a snapshot dir was removed: %v", err)
	}
	c.WaitAll(idx, 20*time.Second)
	c.RequireSameState()
}
