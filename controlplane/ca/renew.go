package ca

import (
	"context"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"
)

// Renewal happens at a uniformly random point between these fractions of a
// certificate's validity. Early enough that a node cut off from the managers
// for a long time still holds a valid certificate; random so that nodes
// joined together do not all renew in the same second.
const (
	renewFrom = 0.5
	renewTo   = 0.8
)

// RenewAt returns when leaf should be renewed: uniformly random between 50 %
// and 80 % of its validity period.
func RenewAt(leaf *x509.Certificate, rnd io.Reader) time.Time {
	validity := leaf.NotAfter.Sub(leaf.NotBefore)
	var b [8]byte
	u := 0.5 // middle of the window if the reader fails; still within bounds
	if _, err := io.ReadFull(rnd, b[:]); err == nil {
		// 53 random bits give a uniform float64 in [0, 1).
		u = float64(binary.BigEndian.Uint64(b[:])>>11) / (1 << 53)
	}
	frac := renewFrom + (renewTo-renewFrom)*u
	return leaf.NotBefore.Add(time.Duration(float64(validity) * frac))
}

// Clock is the time source the Renewer sleeps on; tests inject a fake.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the real clock.
type SystemClock struct{}

func (SystemClock) Now() time.Time                         { return time.Now() }
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// RenewFunc sends a CSR to a manager over the node's current mTLS identity
// and returns the signed certificate.
type RenewFunc func(ctx context.Context, csrPEM []byte) (certPEM []byte, err error)

// Renewer keeps a CertStore's certificate fresh.
//
// Every renewal uses a fresh key rather than re-certifying the old one: a
// key that leaked from disk then stops being useful at the next renewal
// instead of living forever, and nothing is lost — the key never leaves the
// node and the store swaps key and certificate together. If a renewal
// response is lost, the new key is simply dropped and the old pair stays in
// use until the retry.
type Renewer struct {
	Store *CertStore
	Renew RenewFunc
	Clock Clock
	Rand  io.Reader
	// Dir, when set, is where the renewed pair is saved (CertStore.Save)
	// before it is used, so a restart never goes back to the old one.
	Dir string
	// MinBackoff and MaxBackoff bound the doubling wait between failed
	// attempts; zero means 1 s and 5 min.
	MinBackoff, MaxBackoff time.Duration
	Log                    *zap.Logger
}

// Run renews the certificate whenever RenewAt says so, until ctx ends. It
// returns ctx.Err().
func (r *Renewer) Run(ctx context.Context) error {
	log := r.Log
	if log == nil {
		log = zap.NewNop()
	}
	for {
		leaf := r.Store.Leaf()
		at := RenewAt(leaf, r.Rand)
		if err := r.sleep(ctx, at.Sub(r.Clock.Now())); err != nil {
			return err
		}
		backoff := r.minBackoff()
		for {
			err := r.RenewOnce(ctx)
			if err == nil {
				log.Info("node certificate renewed", zap.Time("not_after", r.Store.Leaf().NotAfter))
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			now := r.Clock.Now()
			if now.After(leaf.NotAfter) {
				// Managers will refuse the expired certificate; keep trying
				// anyway (the operator may fix clocks) but say so loudly.
				log.Error("node certificate expired and renewal failed; the node may need to rejoin", zap.Error(err))
			} else {
				log.Warn("node certificate renewal failed, retrying", zap.Error(err), zap.Duration("backoff", backoff))
			}
			if err := r.sleep(ctx, backoff); err != nil {
				return err
			}
			backoff = min(2*backoff, r.maxBackoff())
		}
	}
}

// RenewOnce renews now: a fresh key, a CSR, the RenewFunc, a check that the
// answer is usable, then save and swap.
func (r *Renewer) RenewOnce(ctx context.Context) error {
	old := r.Store.Leaf()
	id, err := IdentityFromCert(old)
	if err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	key, err := NewNodeKey(r.Rand)
	if err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	csr, err := NewCSR(key, id.NodeID, r.Rand)
	if err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	certPEM, err := r.Renew(ctx, csr)
	if err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	keyPEM, err := MarshalKeyPEM(key)
	if err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	// Validate before touching the store or the disk: a pair that does not
	// match, or a certificate for someone else, must never replace ours.
	next, err := NewCertStore(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	nid, err := IdentityFromCert(next.Leaf())
	if err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	if nid.NodeID != id.NodeID {
		return fmt.Errorf("renew: manager issued a certificate for node %q, we are %q", nid.NodeID, id.NodeID)
	}
	if r.Dir != "" {
		if err := next.Save(r.Dir); err != nil {
			return fmt.Errorf("renew: %w", err)
		}
	}
	if err := r.Store.Swap(certPEM, keyPEM); err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	return nil
}

func (r *Renewer) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-r.Clock.After(d):
		return nil
	}
}

func (r *Renewer) minBackoff() time.Duration {
	if r.MinBackoff > 0 {
		return r.MinBackoff
	}
	return time.Second
}

func (r *Renewer) maxBackoff() time.Duration {
	if r.MaxBackoff > 0 {
		return r.MaxBackoff
	}
	return 5 * time.Minute
}
