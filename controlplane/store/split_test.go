package store

import (
	"reflect"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

func TestSplitTasks(t *testing.T) {
	now := time.Unix(1700000000, 0)
	task := func(id string) api.Task { return api.Task{ID: id} }
	exp := func(kind, id string, v uint64) Expectation { return Expectation{Kind: kind, ID: id, Version: v} }
	svc := api.Service{ID: "s1"}
	for _, tc := range []struct {
		name       string
		in         Batch
		ok         bool
		head, tail Batch
	}{
		{name: "one task write: nothing to split",
			in: Batch{Now: now, PutTasks: []api.Task{task("a")}, PutServices: []api.Service{svc}}},
		{name: "no task writes",
			in: Batch{Now: now, PutServices: []api.Service{svc}, Expect: []Expectation{exp(KindService, "s1", 3)}}},
		{name: "puts halved, the service and its expectation in the tail",
			in: Batch{Now: now,
				PutTasks:    []api.Task{task("a"), task("b"), task("c"), task("d")},
				PutServices: []api.Service{svc},
				Expect:      []Expectation{exp(KindTask, "a", 0), exp(KindService, "s1", 3), exp(KindTask, "b", 2), exp(KindTask, "c", 0), exp(KindTask, "d", 5)}},
			ok: true,
			head: Batch{Now: now, PutTasks: []api.Task{task("a"), task("b")},
				Expect: []Expectation{exp(KindTask, "a", 0), exp(KindTask, "b", 2)}},
			tail: Batch{Now: now, PutTasks: []api.Task{task("c"), task("d")}, PutServices: []api.Service{svc},
				Expect: []Expectation{exp(KindService, "s1", 3), exp(KindTask, "c", 0), exp(KindTask, "d", 5)}}},
		{name: "the head takes deletes once the puts are in it",
			in: Batch{Now: now,
				PutTasks:    []api.Task{task("a")},
				DeleteTasks: []string{"x", "y", "z"},
				Expect:      []Expectation{exp(KindTask, "a", 1), exp(KindTask, "x", 4), exp(KindTask, "y", 4), exp(KindTask, "z", 4), exp(KindNode, "n1", 7)}},
			ok: true,
			head: Batch{Now: now, PutTasks: []api.Task{task("a")}, DeleteTasks: []string{"x"},
				Expect: []Expectation{exp(KindTask, "a", 1), exp(KindTask, "x", 4)}},
			tail: Batch{Now: now, DeleteTasks: []string{"y", "z"},
				Expect: []Expectation{exp(KindTask, "y", 4), exp(KindTask, "z", 4), exp(KindNode, "n1", 7)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			head, tail, ok := SplitTasks(&in)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if !reflect.DeepEqual(*head, tc.head) {
				t.Errorf("head\n got %+v\nwant %+v", *head, tc.head)
			}
			if !reflect.DeepEqual(*tail, tc.tail) {
				t.Errorf("tail\n got %+v\nwant %+v", *tail, tc.tail)
			}
			if !reflect.DeepEqual(in, tc.in) {
				t.Errorf("the batch split was changed: %+v", in)
			}
			// Appending to the head must not write into the tail's tasks.
			head.PutTasks = append(head.PutTasks, task("new"))
			if len(tail.PutTasks) > 0 && tail.PutTasks[0].ID == "new" {
				t.Error("head and tail share their task slice's spare room")
			}
		})
	}
}
