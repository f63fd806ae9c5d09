package store

import (
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
)

// FSM adapts a Store to raft.FSM.
//
// Concurrency: raft calls Apply, Snapshot and Restore from its single FSM
// goroutine, never concurrently with one another. Snapshot only captures a
// View (one pointer), so it does not stall the apply pipeline; the returned
// FSMSnapshot's Persist runs on another goroutine concurrently with later
// Applies, which is safe because a View is immutable. Readers use
// Store.View at any time from any goroutine.
type FSM struct {
	store *Store
}

var _ raft.FSM = (*FSM)(nil)

// NewFSM returns the raft FSM for s.
func NewFSM(s *Store) *FSM { return &FSM{store: s} }

// Store returns the store the FSM applies to.
func (f *FSM) Store() *Store { return f.store }

// Apply applies a committed command entry. The response is nil or the
// error that rejected the entry (ErrConflict, ErrInvalid), which raft hands
// back to the proposer through ApplyFuture.Response.
//
// An essential command type this binary does not know panics: applying it
// is impossible and skipping it would let this manager silently diverge from
// its peers. Stopping surfaces the version skew to the operator instead.
func (f *FSM) Apply(l *raft.Log) interface{} {
	if l.Type != raft.LogCommand {
		return nil
	}
	err := f.store.Apply(l.Index, l.Data)
	if errors.Is(err, ErrUnknownCommand) {
		panic(fmt.Sprintf("warren fsm: log entry %d: %v: upgrade this manager", l.Index, err))
	}
	if err != nil {
		return err
	}
	return nil
}

// Snapshot captures the current state; raft persists it later.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{view: f.store.View()}, nil
}

// Restore replaces the state with a snapshot.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.store.Restore(rc); err != nil {
		return fmt.Errorf("restore fsm: %w", err)
	}
	return nil
}

type fsmSnapshot struct{ view *View }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.view.writeTo(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return nil
}

func (s *fsmSnapshot) Release() {}
