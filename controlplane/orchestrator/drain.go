package orchestrator

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// The drain gate. A backend asked to stop keeps running until every node
// whose dataplane could send it new connections has applied a service table
// listing it as terminating; only then does its node see the stop. Without
// it, a node that learns late keeps choosing a backend that is already gone
// and its clients time out.
//
// The decision is two steps because the raft index at which the stop was
// written is known only after the write: the pass that stops a task starts
// its Drain, a later pass records the index (the task's version then) and
// releases the task once every ready node acknowledged an index at least as
// high — or DrainTimeout passed for the rest.

// startDrain begins the drain of a task whose desired state moves past
// running. Tasks without an address are in nobody's table and stop at once.
func (r *reconciler) startDrain(t *api.Task, to api.TaskState) {
	if !t.DesiredState.Before(api.TaskShutdown) || to.Before(api.TaskShutdown) {
		return
	}
	if t.Status.Addr == "" || t.Status.State.Terminal() {
		return
	}
	t.Drain = &api.Drain{Since: r.now}
	r.started[t.ID] = true
}

// drains releases every draining task whose nodes have all acknowledged,
// or whose timeout ran out, and records the index each waits for.
func (r *reconciler) drains(acks map[string]api.TableAck, timeout time.Duration) {
	if timeout <= 0 {
		timeout = DefaultDrainTimeout
	}
	for _, t := range r.tasks {
		if !t.Draining() || r.started[t.ID] || r.deleted[t.ID] {
			continue
		}
		d := *t.Drain
		if d.Index == 0 {
			d.Index = t.Meta.Version
		}
		waiting := r.unacked(acks, d.Index)
		switch {
		case acks == nil:
			d.Done, d.Message = r.now, "no service-table acknowledgements tracked"
		case len(waiting) == 0:
			d.Done, d.Message = r.now, fmt.Sprintf("every ready node applied index %d", d.Index)
		case !r.now.Before(d.Since.Add(timeout)):
			d.Done, d.Message = r.now, fmt.Sprintf("drain timeout (%s): %s did not apply index %d", timeout, strings.Join(waiting, ", "), d.Index)
		default:
			r.wake(d.Since.Add(timeout))
		}
		if d != *t.Drain {
			t.Drain = &d
			r.dirty[t.ID] = true
		}
	}
}

// unacked lists the ready nodes that have not acknowledged index. Nodes
// down or not yet registered are not waited for: a down node's tables are
// out of reach, and a new node's first table is already without the task.
func (r *reconciler) unacked(acks map[string]api.TableAck, index uint64) []string {
	var out []string
	for _, n := range r.order {
		if n.Status.State != api.NodeReady {
			continue
		}
		if a, ok := acks[n.ID]; !ok || a.Index < index {
			out = append(out, n.ID)
		}
	}
	sort.Strings(out)
	return out
}
