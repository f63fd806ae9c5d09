package store

// SplitTasks divides a batch too large for one raft entry in two: head
// carries the first half of its task writes (puts, then deletes) with
// their expectations, tail everything else — the other task writes and
// every write of another kind. Applied head first, each is guarded on
// exactly the objects it writes, as the whole was: a conflict in either
// refuses only that part, and the leader plans again from what landed.
// What the split gives up is the atomicity between the halves, so the
// writes that summarise tasks (services' update status, nodes, the
// cluster) stay in the tail and land only after every task write before
// them did. ok is false when the batch has fewer than two task writes:
// there is nothing to split.
func SplitTasks(b *Batch) (head, tail *Batch, ok bool) {
	n := len(b.PutTasks) + len(b.DeleteTasks)
	if n < 2 {
		return nil, nil, false
	}
	half := n / 2
	h, t := Batch{Now: b.Now}, *b
	moved := map[string]bool{}
	if half <= len(b.PutTasks) {
		h.PutTasks = b.PutTasks[:half:half]
		t.PutTasks = b.PutTasks[half:]
	} else {
		h.PutTasks = b.PutTasks
		k := half - len(b.PutTasks)
		h.DeleteTasks = b.DeleteTasks[:k:k]
		t.PutTasks = nil
		t.DeleteTasks = b.DeleteTasks[k:]
	}
	for i := range h.PutTasks {
		moved[h.PutTasks[i].ID] = true
	}
	for _, id := range h.DeleteTasks {
		moved[id] = true
	}
	t.Expect = nil
	for _, e := range b.Expect {
		if e.Kind == KindTask && moved[e.ID] {
			h.Expect = append(h.Expect, e)
		} else {
			t.Expect = append(t.Expect, e)
		}
	}
	return &h, &t, true
}
