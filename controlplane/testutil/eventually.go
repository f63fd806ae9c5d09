// Package testutil holds the helpers that unit tests and kernel tests
// across the repository share. It lives under controlplane because that is
// the one place every test may import: the control plane must not reach
// kernel code (runtime, dataplane), while runtime, cmd and kernel-tests may
// all import the control plane.
//
// It imports only the standard library, and no production code imports it.
package testutil

import (
	"errors"
	"testing"
	"time"
)

// Eventually polls f until it holds, and fails the test with what (and f's
// last error) when within passes first. within only guards against a hung
// test: it is a bound, never the thing a test asserts. f is a func() bool or
// a func() error; an error wrapped with Stop ends the polling at once.
//
// Polling starts fast (cheap in-memory checks answer in a millisecond) and
// backs off to a tenth of within, at most 250ms, so that checks which run
// commands do not load a shared machine.
func Eventually[F func() bool | func() error](t testing.TB, what string, within time.Duration, f F) {
	t.Helper()
	check := func() error {
		switch f := any(f).(type) {
		case func() bool:
			if !f() {
				return errors.New("condition not met")
			}
			return nil
		case func() error:
			return f()
		}
		panic("unreachable")
	}
	deadline := time.Now().Add(within)
	pause, most := time.Millisecond, min(within/10, 250*time.Millisecond)
	var err error
	for {
		if err = check(); err == nil {
			return
		}
		var s stopErr
		if errors.As(err, &s) || !time.Now().Before(deadline) {
			break
		}
		time.Sleep(pause)
		pause = max(min(2*pause, most), time.Millisecond)
	}
	t.Fatalf("%s: not within %s: %v", what, within, err)
}

// Stop marks an error Eventually must not retry: waiting cannot help.
func Stop(err error) error { return stopErr{err} }

type stopErr struct{ error }

func (s stopErr) Unwrap() error { return s.error }
