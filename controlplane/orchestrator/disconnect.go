package orchestrator

import (
	"fmt"

	"github.com/warrenhq/warren/controlplane/api"
)

// Disconnected nodes. A node marked down may be dead or only cut off and
// still running its tasks, so its tasks keep their desired state. The
// service's disconnect grace (api.DisconnectPolicy) says how long they
// still fill their slot; after it they are lost: the slot is refilled
// elsewhere, but the task itself is left alone. When the node returns, a
// lost task is live again next to its replacement and the service's
// reconcile policy picks the one the slot keeps (keeper); the other stops
// through the drain gate like any stop.

// markUnknown marks the unfinished tasks of down nodes unknown: they are
// in no service table and not ready, but keep their desired state and the
// rest of their status, and their node reports what became of them when it
// returns.
func (r *reconciler) markUnknown() {
	for _, t := range r.tasks {
		if t.Status.State.Terminal() || t.Status.State == api.TaskUnknown || !r.away(t) {
			continue
		}
		t.Status.State = api.TaskUnknown
		t.Status.Timestamp = r.now
		t.Status.Message = "node " + t.NodeID + " is down; the task may still run there"
		r.dirty[t.ID] = true
	}
}

// unsettled reports whether a returned node has yet to say what became of
// one of ts: until it does the slot's tasks are left alone, so keep-original
// does not take a task it has not heard of yet for a dead one.
func (r *reconciler) unsettled(ts []*api.Task) bool {
	for _, t := range ts {
		if t.Status.State == api.TaskUnknown && !r.away(t) {
			return true
		}
	}
	return false
}

// dropUnplaced stops the tasks of an unsettled slot that were never
// placed, and returns the others: a replacement that waited for a node is
// not started next to an original whose node is back (if that original
// turns out gone, the slot is refilled then).
func (r *reconciler) dropUnplaced(ts []*api.Task) []*api.Task {
	var out []*api.Task
	for _, t := range ts {
		if neverPlaced(t) {
			r.setDesired(t, api.TaskShutdown)
			t.StopReason = "not needed: the node of the task it replaced is back"
			continue
		}
		out = append(out, t)
	}
	return out
}

// lost reports whether t is on a down node whose disconnect grace, counted
// from the node's last heartbeat, has run out. Until then the leader is
// woken for the moment it does.
func (r *reconciler) lost(svc *api.Service, t *api.Task) bool {
	n := r.nodes[t.NodeID]
	if n == nil || n.Status.State != api.NodeDown || t.Status.State.Terminal() {
		return false
	}
	g := svc.Spec.DisconnectGrace(r.nodeDownGrace)
	if g.Forever() {
		return false
	}
	ref := n.Status.Heartbeat
	if ref.IsZero() {
		return true // never heard from: nothing to wait for
	}
	at := ref.Add(g.D())
	if r.now.Before(at) {
		r.wake(at)
		return false
	}
	return true
}

// away reports whether t's node is marked down.
func (r *reconciler) away(t *api.Task) bool {
	n := r.nodes[t.NodeID]
	return n != nil && n.Status.State == api.NodeDown
}

// rejoined reports whether one of ts came back with its node: only then
// are several live tasks in a slot an original and its replacement, which
// the reconcile policy decides between. Any other duplicate (a replacement
// of an unhealthy task, a start-first step) keeps the best: ready, newest.
func rejoined(ts []*api.Task) bool {
	for _, t := range ts {
		if t.Rejoined {
			return true
		}
	}
	return false
}

// settleRejoin forgets that tasks of a slot rejoined once the reconcile
// policy has decided it: a later duplicate of the kept task (its heal
// replacement) is not a rejoin and keeps the best.
func (r *reconciler) settleRejoin(ts []*api.Task) {
	for _, t := range ts {
		if t.Rejoined {
			t.Rejoined = false
			r.dirty[t.ID] = true
		}
	}
}

// keeper picks the task a slot keeps among several live ones of the same
// spec: by the service's reconcile policy when a node came back with the
// original while its replacement runs (rejoined), otherwise best.
func keeper(svc *api.Service, ts []*api.Task) *api.Task {
	if len(ts) == 1 {
		return ts[0]
	}
	if !rejoined(ts) {
		return best(ts)
	}
	running := func(t *api.Task) bool { return t.Status.State == api.TaskRunning }
	var k *api.Task
	switch svc.Spec.ReconcilePolicy() {
	case api.ReconcileKeepReplacement:
		for _, t := range ts {
			if k == nil || newer(t, k) {
				k = t
			}
		}
		return k
	case api.ReconcileHealthiest:
		// The original on a tie: a restart is what the policy avoids.
		rank := func(t *api.Task) int {
			switch {
			case ready(t):
				return 2
			case running(t):
				return 1
			}
			return 0
		}
		for _, t := range ts {
			if k == nil || rank(t) > rank(k) || rank(t) == rank(k) && newer(k, t) {
				k = t
			}
		}
		return k
	case api.ReconcileLongestRunning:
		// Status.Timestamp of a running task is its last change: when it
		// started, or its health last moved. A task restarted in place
		// (Restarts) started again then, so it yields to one that did not.
		for _, t := range ts {
			if !running(t) {
				continue
			}
			if k == nil || t.Status.Restarts < k.Status.Restarts ||
				t.Status.Restarts == k.Status.Restarts && t.Status.Timestamp.Before(k.Status.Timestamp) {
				k = t
			}
		}
	default: // keep-original
		for _, t := range ts {
			if running(t) && (k == nil || newer(k, t)) {
				k = t
			}
		}
	}
	if k == nil {
		k = best(ts)
	}
	return k
}

// stopReason says why keeper's choice stopped the others of ts, for
// `service ps` and the node's log line; a duplicate that no rejoin made
// needs no reason.
func stopReason(svc *api.Service, keep *api.Task, ts []*api.Task) string {
	if !rejoined(ts) {
		return ""
	}
	return fmt.Sprintf("reconcile %s: the slot keeps task %s on node %s", svc.Spec.ReconcilePolicy(), keep.ID, keep.NodeID)
}
