package raftnode

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"
)

// unfinishedSuffix marks a snapshot raft's FileSnapshotStore is still
// writing (or receiving from the leader): <dir>/snapshots/<id>.tmp until
// the sink's Close renames it.
const unfinishedSuffix = ".tmp"

// removeUnfinishedSnapshots deletes the snapshot directories a killed
// process left half-written. Raft ignores them when it restores, but never
// removes them either, so every crash in the middle of a snapshot would
// keep a partial copy of the store on disk for good. It must run only while
// this process holds the raft log's lock (bolt's flock): then no other
// process can be writing a snapshot in the same directory.
func removeUnfinishedSnapshots(dataDir string, log *zap.Logger) error {
	dir := filepath.Join(dataDir, snapshotsDir)
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read snapshot dir %s: %w", dir, err)
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasSuffix(e.Name(), unfinishedSuffix) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if err := os.RemoveAll(path); err != nil {
			return fmt.Errorf("remove unfinished snapshot %s: %w", path, err)
		}
		log.Info("removed a snapshot left unfinished by a crash", zap.String("path", path))
	}
	return nil
}
