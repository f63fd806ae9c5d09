package runtime

import (
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// DefaultRestartDelay is used when a policy leaves Delay at zero.
const DefaultRestartDelay = 100 * time.Millisecond

// DefaultMaxRestartDelay caps exponential backoff when MaxDelay is zero.
const DefaultMaxRestartDelay = 30 * time.Second

// RestartHistory is what the restart decision needs to remember per task:
// the times of previous restarts.
type RestartHistory struct {
	Restarts []time.Time
}

// RestartDecision is the result of NextRestart.
type RestartDecision struct {
	Restart bool
	Delay   time.Duration
	Reason  string
}

// NextRestart decides whether and when a task whose process exited with exit
// is started again. It is a pure function of the policy, the history of
// earlier restarts, the exit and now.
//
// Attempts counted against MaxAttempts are the restarts inside Window (all
// of them when Window is zero). The delay doubles with each counted attempt,
// from Delay up to MaxDelay, so a crash-looping task backs off while one that
// crashes once a day restarts fast.
func NextRestart(p api.RestartPolicy, h RestartHistory, exit ExitStatus, now time.Time) RestartDecision {
	cond := p.Condition
	if cond == "" {
		cond = api.RestartAny
	}
	switch cond {
	case api.RestartNone:
		return RestartDecision{Reason: "restart policy none"}
	case api.RestartOnFailure:
		if !exit.Failed() {
			return RestartDecision{Reason: "exited 0 and restart policy is on-failure"}
		}
	}
	attempts := 0
	for _, t := range h.Restarts {
		if p.Window == 0 || now.Sub(t) < p.Window.D() {
			attempts++
		}
	}
	if p.MaxAttempts > 0 && uint64(attempts) >= p.MaxAttempts {
		return RestartDecision{Reason: "max restart attempts reached"}
	}
	delay := p.Delay.D()
	if delay <= 0 {
		delay = DefaultRestartDelay
	}
	maxDelay := p.MaxDelay.D()
	if maxDelay <= 0 {
		maxDelay = DefaultMaxRestartDelay
	}
	if maxDelay < delay {
		maxDelay = delay
	}
	for i := 0; i < attempts && delay < maxDelay; i++ {
		delay *= 2
	}
	if delay > maxDelay {
		delay = maxDelay
	}
	return RestartDecision{Restart: true, Delay: delay}
}
