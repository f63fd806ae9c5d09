package agent

import (
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// autonomy follows who decides the node's service table: the managers, or
// the node itself from the moment no manager answered for CutAfter until
// their table is fresh and usable again (or Handover after they answered,
// whichever comes first: a peer that stays silent must not keep the node
// deciding alone for good). Pure: the caller passes every time.
type autonomy struct {
	cutAfter, handover time.Duration

	lastOK time.Time        // a manager's last answer (or the agent's start)
	since  time.Time        // start of the cut (the last answer before it); zero: the managers decide
	backAt time.Time        // the first answer after the cut; zero while still cut off
	recvAt time.Time        // the last assignments received
	atCut  *api.Assignments // what was in effect when the cut began
}

type autonomyEvent int

const (
	autonomyNone autonomyEvent = iota
	autonomyCut
	autonomyBack
)

func (s *autonomy) local() bool { return !s.since.IsZero() }

// answered records a manager's answer. It reports whether this is the first
// since the cut, when the caller should fetch the managers' table at once.
func (s *autonomy) answered(now time.Time) bool {
	s.lastOK = now
	if s.local() && s.backAt.IsZero() {
		s.backAt = now
		return true
	}
	return false
}

// received records assignments from a manager.
func (s *autonomy) received(now time.Time) { s.recvAt = now }

// step decides at now. current is the managers' latest assignments; fresh
// and peersOK say whether they account for this node's reports (Fresh) and
// whether the peers they send traffic to answer (PeersAnswer).
func (s *autonomy) step(now time.Time, current *api.Assignments, fresh, peersOK bool) autonomyEvent {
	silent := !s.lastOK.IsZero() && now.Sub(s.lastOK) > s.cutAfter
	if !s.local() {
		if !silent {
			return autonomyNone
		}
		s.since, s.backAt, s.atCut = s.lastOK, time.Time{}, current
		return autonomyCut
	}
	if silent {
		s.backAt = time.Time{} // answered once, then lost again: still cut off
		return autonomyNone
	}
	if s.backAt.IsZero() {
		return autonomyNone
	}
	synced := s.recvAt.After(s.backAt) && fresh && peersOK
	if !synced && now.Sub(s.backAt) < s.handover {
		return autonomyNone
	}
	s.since, s.backAt, s.atCut = time.Time{}, time.Time{}, nil
	return autonomyBack
}
