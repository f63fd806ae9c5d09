package api

import (
	"reflect"
	"testing"
)

func TestTablesWaiting(t *testing.T) {
	tb := Tables{Index: 50, Nodes: []NodeTable{
		{NodeID: "n1", Hostname: "edge-1", State: NodeReady, Applied: 50},
		{NodeID: "n2", Hostname: "edge-2", State: NodeReady, Applied: 41},
		{NodeID: "n3", State: NodeReady},                       // not heard since the election
		{NodeID: "n4", Hostname: "edge-4", State: NodeDown},    // not waited for
		{NodeID: "n5", Hostname: "edge-5", State: NodeUnknown}, // never registered
		{NodeID: "n6", Hostname: "edge-6", State: NodeReady, Applied: 60},
	}}
	cases := []struct {
		index uint64
		want  []string
	}{
		{0, nil},
		{41, []string{"n3"}},
		{45, []string{"edge-2", "n3"}},
		{50, []string{"edge-2", "n3"}},
		{51, []string{"edge-1", "edge-2", "n3"}},
	}
	for _, c := range cases {
		if got := tb.Waiting(c.index); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Waiting(%d) = %v, want %v", c.index, got, c.want)
		}
	}
}

func TestTaskDraining(t *testing.T) {
	base := Task{DesiredState: TaskShutdown, Status: TaskStatus{State: TaskRunning}, Drain: &Drain{}}
	cases := []struct {
		name string
		mut  func(*Task)
		want bool
	}{
		{"asked to stop, drain open", func(*Task) {}, true},
		{"remove", func(t *Task) { t.DesiredState = TaskRemove }, true},
		{"released", func(t *Task) { t.Drain = &Drain{Done: t.Status.Timestamp.AddDate(1, 0, 0)} }, false},
		{"no drain", func(t *Task) { t.Drain = nil }, false},
		{"still wanted", func(t *Task) { t.DesiredState = TaskRunning }, false},
		{"exited", func(t *Task) { t.Status.State = TaskFailed }, false},
	}
	for _, c := range cases {
		x := base
		c.mut(&x)
		if got := x.Draining(); got != c.want {
			t.Errorf("%s: Draining() = %v, want %v", c.name, got, c.want)
		}
	}
}
