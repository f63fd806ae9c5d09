package api

import (
	"math"
	"time"
)

// DisconnectPolicy is what a service's tasks do while their node cannot
// reach the managers, and what happens when it comes back (Nomad's
// disconnect block). The managers apply Grace and Reconcile; the node
// applies StopAfter by itself, since it is the one cut off.
type DisconnectPolicy struct {
	// Grace is how long the tasks of a node that stopped heartbeating still
	// count as running before replacements are placed. nil: the cluster's
	// node-down grace for replicated services, GraceForever for global ones
	// (a global task has nowhere else to go). 0 replaces at once when the
	// node is marked down.
	Grace *Grace `json:"grace,omitempty"`
	// StopAfter, when set, has the node stop the task once it has been out
	// of touch with every manager this long: for work that must not run
	// twice. 0 keeps the task running however long the cut lasts.
	StopAfter Duration `json:"stop_after,omitempty"`
	// Reconcile chooses between the original and its replacement when the
	// node returns and both run (ReconcileKeepOriginal when empty).
	Reconcile ReconcilePolicy `json:"reconcile,omitempty"`
}

// ReconcilePolicy picks the one task a slot keeps when a disconnected node
// returns with its original next to the replacement made meanwhile.
type ReconcilePolicy string

const (
	// ReconcileKeepOriginal adopts the returning node's running task and
	// stops the replacement: the network coming back causes no restart.
	ReconcileKeepOriginal ReconcilePolicy = "keep-original"
	// ReconcileKeepReplacement stops the original: the cluster's view while
	// the node was away wins.
	ReconcileKeepReplacement ReconcilePolicy = "keep-replacement"
	// ReconcileHealthiest keeps the task that can take traffic (running and
	// healthy), the original on a tie.
	ReconcileHealthiest ReconcilePolicy = "healthiest"
	// ReconcileLongestRunning keeps the task whose process has run the
	// longest without a restart.
	ReconcileLongestRunning ReconcilePolicy = "longest-running"
)

// ReconcilePolicies lists the accepted values, for flags and validation.
var ReconcilePolicies = []ReconcilePolicy{ReconcileKeepOriginal, ReconcileKeepReplacement, ReconcileHealthiest, ReconcileLongestRunning}

// Grace is a Duration that may also be "inf" (GraceForever).
type Grace Duration

// GraceForever never replaces a disconnected node's tasks.
const GraceForever = Grace(math.MaxInt64)

// D is the grace as a time.Duration; GraceForever is math.MaxInt64.
func (g Grace) D() time.Duration { return time.Duration(g) }

// Forever reports whether g never ends.
func (g Grace) Forever() bool { return g == GraceForever }

func (g Grace) String() string {
	if g.Forever() {
		return "inf"
	}
	return time.Duration(g).String()
}

func (g Grace) MarshalText() ([]byte, error) { return []byte(g.String()), nil }

func (g *Grace) UnmarshalText(b []byte) error {
	if string(b) == "inf" {
		*g = GraceForever
		return nil
	}
	var d Duration
	if err := d.UnmarshalText(b); err != nil {
		return err
	}
	*g = Grace(d)
	return nil
}

// ParseGrace reads a grace as the CLI takes it: a duration or "inf".
func ParseGrace(s string) (Grace, error) {
	var g Grace
	err := g.UnmarshalText([]byte(s))
	return g, err
}

// DisconnectGrace is the grace that applies to svc's tasks, given the
// cluster's node-down grace.
func (s *ServiceSpec) DisconnectGrace(nodeDown time.Duration) Grace {
	if s.Disconnect != nil && s.Disconnect.Grace != nil {
		return *s.Disconnect.Grace
	}
	if s.Mode == ModeGlobal {
		return GraceForever
	}
	return Grace(nodeDown)
}

// ReconcilePolicy is svc's policy for a returning node, with the default.
func (s *ServiceSpec) ReconcilePolicy() ReconcilePolicy {
	if s.Disconnect != nil && s.Disconnect.Reconcile != "" {
		return s.Disconnect.Reconcile
	}
	return ReconcileKeepOriginal
}
