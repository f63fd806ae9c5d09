package apiserver

import (
	"context"
	"sync"
	"time"
)

// Linearizable reads on the leader used to cost one raft round each
// (VerifyLeader: an AppendEntries to every follower, answered by a quorum).
// On a busy cluster that round queues behind the replication of plans and
// status reports, so an inspect took as long as a write. A round that
// confirmed leadership, though, keeps proving it for a while: no other
// manager can be elected, let alone commit, until a heartbeat timeout after
// it began (raftnode.Node.ReadLease states the argument and its bound). So
// reads arriving within the lease are answered from the local store at
// once; one round at a time renews the lease, started by whichever read
// finds it half spent, and a read that finds it over waits for that round.

// leaseRoundTimeout bounds one renewal round; it does not follow any
// caller's context, since every read waiting on it shares it.
const leaseRoundTimeout = 10 * time.Second

// readGate is the leader's read lease and its one renewal round in flight.
type readGate struct {
	mu sync.Mutex
	// until is when the lease ends; zero when there is none.
	until time.Time
	round *leaseRound
	// now is the lease's clock, time.Now unless a test sets it. It is not
	// Config.Now: the lease must be measured on the monotonic clock, which
	// a caller's clock (one returning UTC, say) may have stripped, and then
	// a step of the wall clock would stretch the lease.
	now func() time.Time
}

func (g *readGate) clock() time.Time {
	if g.now != nil {
		return g.now()
	}
	return time.Now()
}

// leaseRound is one VerifyLeader: start is taken before it is asked for,
// and err is set before done closes.
type leaseRound struct {
	start time.Time
	done  chan struct{}
	err   error
}

// leaseDecision is the pure core of a read on the leader: a read that
// arrived before the lease ends may be served now; a renewal round is due
// once less than half the lease is left, so that steady reads keep finding
// a lease and never wait.
func leaseDecision(arrival, until time.Time, lease time.Duration) (serve, renew bool) {
	if until.IsZero() {
		return false, true
	}
	left := until.Sub(arrival)
	return left > 0, left < lease/2
}

// verifyRead confirms that a read arriving now may be answered from this
// leader's store as linearizable: within the lease, at once; otherwise
// after a round that began after the read arrived, or one whose lease
// covers its arrival. A failed round ends the lease and its error is the
// read's, which then falls back to a stale answer as before.
func (s *Server) verifyRead(ctx context.Context) error {
	lease := s.b.ReadLease()
	if lease <= 0 {
		return s.b.VerifyLeader(ctx)
	}
	g := &s.lease
	arrival := g.clock()
	for {
		g.mu.Lock()
		serve, renew := leaseDecision(arrival, g.until, lease)
		rd := g.round
		if renew && rd == nil {
			rd = s.startLeaseRound(lease)
		}
		g.mu.Unlock()
		if serve {
			return nil
		}
		select {
		case <-rd.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if rd.err != nil {
			return rd.err
		}
		if !rd.start.Before(arrival) {
			return nil
		}
		// The round began before this read arrived: it counts only if its
		// lease covers the arrival, which the next pass decides.
	}
}

// startLeaseRound starts the renewal round; s.lease.mu is held.
func (s *Server) startLeaseRound(lease time.Duration) *leaseRound {
	g := &s.lease
	rd := &leaseRound{start: g.clock(), done: make(chan struct{})}
	g.round = rd
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), leaseRoundTimeout)
		err := s.b.VerifyLeader(ctx)
		cancel()
		g.mu.Lock()
		rd.err = err
		if end := rd.start.Add(lease); err == nil && end.After(g.until) {
			g.until = end
		} else if err != nil {
			g.until = time.Time{}
		}
		g.round = nil
		g.mu.Unlock()
		close(rd.done)
	}()
	return rd
}
