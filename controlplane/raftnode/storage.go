package raftnode

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// ErrStorage means this manager could not write its raft log (a full or
// failing disk). The error that wraps it names the cause, e.g. "raft log
// write failed: write …/raft.db: no space left on device".
var ErrStorage = errors.New("raft log write failed")

// watchedLogs records whether the last write to the raft log failed.
//
// When the leader cannot store an entry, raft answers the proposal with
// the store's error and steps down; a single manager then keeps electing
// itself and failing to store its first entry, so every later write only
// sees "no leader". Remembering the failure lets those writes say what is
// actually wrong, and a successful write (space came back) forgets it.
//
// It sits above raft's LogCache, so that raft sees ErrStorage; the cache
// flattens the errors of the store below it into text, so the store's own
// error (ENOSPC, with the file's name) is taken from below the cache.
type watchedLogs struct {
	raft.LogStore
	below  *lastErrorLogs
	failed atomic.Pointer[error]
}

// lastErrorLogs keeps the last error of the store it wraps.
type lastErrorLogs struct {
	raft.LogStore
	last atomic.Pointer[error]
}

func (l *lastErrorLogs) StoreLog(log *raft.Log) error {
	return l.keep(l.LogStore.StoreLog(log))
}

func (l *lastErrorLogs) StoreLogs(logs []*raft.Log) error {
	return l.keep(l.LogStore.StoreLogs(logs))
}

func (l *lastErrorLogs) keep(err error) error {
	if err != nil {
		l.last.Store(&err)
	}
	return err
}

func (w *watchedLogs) StoreLog(l *raft.Log) error {
	return w.record(w.LogStore.StoreLog(l))
}

func (w *watchedLogs) StoreLogs(logs []*raft.Log) error {
	return w.record(w.LogStore.StoreLogs(logs))
}

func (w *watchedLogs) record(err error) error {
	if err == nil {
		w.failed.Store(nil)
		return nil
	}
	if w.below != nil {
		if p := w.below.last.Swap(nil); p != nil {
			err = *p
		}
	}
	err = fmt.Errorf("%w: %w", ErrStorage, err)
	w.failed.Store(&err)
	return err
}

// lastFailure is the error of the last log write if it failed, else nil.
func (w *watchedLogs) lastFailure() error {
	if p := w.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// noLeader is the error for a cluster without a leader: ErrNoQuorum, and,
// when this manager's own log writes are failing, that failure first,
// because it is the likelier cause and the one the operator can fix here.
func (n *Node) noLeader() error {
	if err := n.watched.lastFailure(); err != nil {
		return fmt.Errorf("no leader for %v, and this manager cannot write its log: %w (%w)", n.cfg.NoQuorumWait, err, ErrNoQuorum)
	}
	return fmt.Errorf("no leader for %v: %w", n.cfg.NoQuorumWait, ErrNoQuorum)
}
