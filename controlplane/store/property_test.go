package store

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/warrenhq/warren/controlplane/api"
)

var states = []api.TaskState{api.TaskPending, api.TaskAssigned, api.TaskRunning, api.TaskFailed, api.TaskShutdown}

// genBatch draws batches over a small ID space so that puts, deletes,
// renames, moves, status reports and expectations collide often.
func genBatch(t *rapid.T, step int) *Batch {
	id := func(p string, n int) string { return fmt.Sprintf("%s%d", p, rapid.IntRange(0, n).Draw(t, p)) }
	b := &Batch{Now: t0.Add(time.Duration(step) * time.Second)}
	for i, n := 0, rapid.IntRange(0, 4).Draw(t, "nput"); i < n; i++ {
		switch rapid.IntRange(0, 5).Draw(t, "op") {
		case 0:
			b.PutNodes = append(b.PutNodes, api.Node{ID: id("n", 4), Spec: api.NodeSpec{Availability: api.AvailabilityActive}})
		case 1:
			b.PutServices = append(b.PutServices, svc(id("s", 3), id("name", 3)))
		case 2:
			b.PutTasks = append(b.PutTasks, task(id("t", 8), id("s", 3), id("n", 4), rapid.SampledFrom(states).Draw(t, "st")))
		case 3:
			b.TaskStatuses = append(b.TaskStatuses, TaskStatusUpdate{TaskID: id("t", 8), NodeID: id("n", 4),
				Status: api.TaskStatus{State: rapid.SampledFrom(states).Draw(t, "st"), Restarts: rapid.Uint64Range(0, 2).Draw(t, "r")}})
		case 4:
			b.NodeStatuses = append(b.NodeStatuses, NodeStatusUpdate{NodeID: id("n", 4), Status: api.NodeStatus{Hostname: id("h", 2)}})
		case 5:
			switch rapid.IntRange(0, 2).Draw(t, "del") {
			case 0:
				b.DeleteTasks = append(b.DeleteTasks, id("t", 8))
			case 1:
				b.DeleteServices = append(b.DeleteServices, id("s", 3))
			case 2:
				b.DeleteNodes = append(b.DeleteNodes, id("n", 4))
			}
		}
	}
	if rapid.Bool().Draw(t, "expect") {
		b.Expect = append(b.Expect, Expectation{Kind: KindTask, ID: id("t", 8), Version: rapid.Uint64Range(0, uint64(step)).Draw(t, "ver")})
	}
	return b
}

func snapshotBytes(t *rapid.T, s *Store) []byte {
	var buf bytes.Buffer
	if err := s.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestPropertyReplicasAgree: two stores fed the same entries hold
// byte-identical snapshots after every step, a store restored from a
// snapshot mid-way continues identically, and the secondary indexes always
// match the primary data.
func TestPropertyReplicasAgree(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := New(), New()
		var c *Store
		steps := rapid.IntRange(1, 30).Draw(t, "steps")
		restoreAt := rapid.IntRange(0, steps-1).Draw(t, "restoreAt")
		for i := 0; i < steps; i++ {
			data, err := Encode(genBatch(t, i))
			if err != nil {
				t.Fatal(err)
			}
			idx := uint64(i + 1)
			ea, eb := a.Apply(idx, data), b.Apply(idx, data)
			if (ea == nil) != (eb == nil) {
				t.Fatalf("step %d: replicas disagree on outcome: %v vs %v", i, ea, eb)
			}
			if c != nil {
				if ec := c.Apply(idx, data); (ec == nil) != (ea == nil) {
					t.Fatalf("step %d: restored replica disagrees: %v vs %v", i, ec, ea)
				}
			}
			if i == restoreAt {
				c = New()
				if err := c.Restore(bytes.NewReader(snapshotBytes(t, a))); err != nil {
					t.Fatal(err)
				}
			}
			sa := snapshotBytes(t, a)
			if !bytes.Equal(sa, snapshotBytes(t, b)) || (c != nil && !bytes.Equal(sa, snapshotBytes(t, c))) {
				t.Fatalf("step %d: snapshots differ", i)
			}
			checkIndexes(t, a.View())
			if c != nil {
				checkIndexes(t, c.View())
			}
		}
	})
}

func checkIndexes(t *rapid.T, v *View) {
	tasks := v.Tasks()
	byNode, bySvc := 0, 0
	for _, n := range v.Nodes() {
		for _, x := range v.TasksByNode(n.ID) {
			if got, _ := v.Task(x.ID); got.NodeID != n.ID || got.Meta != x.Meta {
				t.Fatalf("node index holds stale task %s", x.ID)
			}
		}
	}
	seenNodes, seenSvcs := map[string]bool{}, map[string]bool{}
	for _, x := range tasks {
		if x.NodeID != "" && !seenNodes[x.NodeID] {
			seenNodes[x.NodeID] = true
			byNode += len(v.TasksByNode(x.NodeID))
		}
		if !seenSvcs[x.ServiceID] {
			seenSvcs[x.ServiceID] = true
			bySvc += len(v.TasksByService(x.ServiceID))
		}
	}
	if bySvc != len(tasks) || byNode != len(tasks) { // every generated task is assigned
		t.Fatalf("indexes hold %d (service) and %d (node) tasks, want %d", bySvc, byNode, len(tasks))
	}
	names := map[string]bool{}
	for _, s := range v.Services() {
		if names[s.Spec.Name] {
			t.Fatalf("duplicate service name %q", s.Spec.Name)
		}
		names[s.Spec.Name] = true
		if got, ok := v.ServiceByName(s.Spec.Name); !ok || got.ID != s.ID {
			t.Fatalf("name index: %q -> %v", s.Spec.Name, got.ID)
		}
	}
}
