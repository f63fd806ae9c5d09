package client

import (
	"reflect"
	"strings"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
)

func onNode(node string, pr api.PullProgress) func(*api.Task) {
	return func(t *api.Task) { t.NodeID, t.Status.Pull = node, pr }
}

func TestPullsOf(t *testing.T) {
	s := api.Service{ID: "svc-1", Spec: api.ServiceSpec{Name: "web"}}
	run, prep, shut := api.TaskRunning, api.TaskPreparing, api.TaskShutdown
	v1 := func(done, total int64) api.PullProgress {
		return api.PullProgress{Ref: "reg/web:v1", Done: done, Total: total}
	}
	tasks := []api.Task{
		// Two tasks on n2 wait for one pull: the furthest sample is it.
		task(1, 1, run, prep, onNode("n2", v1(100, 3000))),
		task(2, 1, run, prep, onNode("n2", v1(1200, 3000))),
		task(3, 1, run, prep, onNode("n1", v1(0, 0))),
		task(4, 1, run, run, onNode("n1", api.PullProgress{})), // pulled
		task(5, 1, shut, prep, onNode("n3", v1(5, 10))),        // being stopped
		task(6, 1, run, prep, onNode("n3", v1(5, 10)), func(t *api.Task) { t.ServiceID = "other" }),
		task(7, 1, run, prep, onNode("n1", api.PullProgress{Ref: "reg/side:v2", Done: 7, Total: 9})),
	}
	got := PullsOf(s, tasks)
	want := []NodePull{
		{NodeID: "n1", Ref: "reg/side:v2", Done: 7, Total: 9},
		{NodeID: "n1", Ref: "reg/web:v1"},
		{NodeID: "n2", Ref: "reg/web:v1", Done: 1200, Total: 3000},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PullsOf:\n got %+v\nwant %+v", got, want)
	}
}

func TestPullView(t *testing.T) {
	s := api.Service{ID: "svc-1", Spec: api.ServiceSpec{Name: "web"}}
	run, prep, start := api.TaskRunning, api.TaskPreparing, api.TaskStarting
	v1 := func(done int64) api.PullProgress {
		return api.PullProgress{Ref: "reg/web:v1", Done: done, Total: 3_000_000}
	}
	names := map[string]string{"node-aaaaaaaaaaaaaaaa": "h1", "node-bbbbbbbbbbbbbbbb": "h2"}
	a, b, c := "node-aaaaaaaaaaaaaaaa", "node-bbbbbbbbbbbbbbbb", "node-cccccccccccccccc"
	var v PullView
	for i, step := range []struct {
		tasks []api.Task
		want  []string
	}{
		{[]api.Task{task(1, 1, run, prep), task(2, 1, run, prep)}, []string{}},
		{[]api.Task{task(1, 1, run, prep, onNode(a, v1(0))), task(2, 1, run, prep, onNode(b, v1(1_200_000)))},
			[]string{"h1: pulling reg/web:v1 0.0/3.0 MB", "h2: pulling reg/web:v1 1.2/3.0 MB"}},
		// h1 finished and starts; h2 goes on.
		{[]api.Task{task(1, 1, run, start, onNode(a, api.PullProgress{})), task(2, 1, run, prep, onNode(b, v1(2_500_000)))},
			[]string{"h1: pulled reg/web:v1, starting", "h2: pulling reg/web:v1 2.5/3.0 MB"}},
		// A node without a name (not yet known to the CLI) by its short ID.
		{[]api.Task{task(1, 1, run, run, onNode(a, api.PullProgress{})), task(2, 1, run, prep, onNode(b, v1(2_500_000))), task(3, 1, run, prep, onNode(c, v1(10)))},
			[]string{"h1: pulled reg/web:v1, running", "h2: pulling reg/web:v1 2.5/3.0 MB", "node-ccccccc: pulling reg/web:v1 0.0/3.0 MB"}},
		{[]api.Task{task(1, 1, run, run, onNode(a, api.PullProgress{})), task(2, 1, run, run, onNode(b, api.PullProgress{})),
			task(3, 1, run, prep, onNode(c, api.PullProgress{}), withStatus("", "prepare: image reg/web:v1: 401"))},
			[]string{"h1: pulled reg/web:v1, running", "h2: pulled reg/web:v1, running", "node-ccccccc: pulled reg/web:v1, preparing: prepare: image reg/web:v1: 401"}},
	} {
		var got []string
		for _, l := range v.Lines(s, step.tasks, names) {
			got = append(got, l.Text)
		}
		if len(got) == 0 {
			got = []string{}
		}
		if !reflect.DeepEqual(got, step.want) {
			t.Errorf("step %d:\n got %q\nwant %q", i, got, step.want)
		}
	}
}

func TestFormatBytesOf(t *testing.T) {
	for _, tc := range []struct {
		done, total int64
		want        string
	}{
		{1_200_000, 3_000_000, "1.2/3.0 MB"},
		{512, 900, "512/900 B"},
		{512, 900_000, "1/900 kB"},
		{150_000, 0, "150 kB"},
		{0, 0, "0 B"},
		{2_500_000_000, 4_000_000_000, "2.5/4.0 GB"},
		{999_999, 3_000_000, "1.0/3.0 MB"},
	} {
		if got := FormatBytesOf(tc.done, tc.total); got != tc.want {
			t.Errorf("FormatBytesOf(%d, %d) = %q, want %q", tc.done, tc.total, got, tc.want)
		}
	}
}

func TestNodeNames(t *testing.T) {
	node := func(id, host string) api.Node {
		n := api.Node{ID: id}
		n.Status.Hostname = host
		return n
	}
	got := NodeNames([]api.Node{node("aaaaaaaaaaaaaaaa", "edge"), node("bbbbbbbbbbbbbbbb", "edge"), node("cccc", "core"), node("dddddddddddddddd", "")})
	want := map[string]string{"aaaaaaaaaaaaaaaa": "edge (aaaaaaaaaaaa)", "bbbbbbbbbbbbbbbb": "edge (bbbbbbbbbbbb)", "cccc": "core", "dddddddddddddddd": "dddddddddddd"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("NodeNames:\n got %v\nwant %v", got, want)
	}
}

func TestProblemNamesPulls(t *testing.T) {
	s := api.Service{ID: "svc-1", Generation: 1, Spec: api.ServiceSpec{Name: "web", Replicas: 1},
		Status: &api.ServiceStatus{ObservedGeneration: 1, Desired: 1}}
	tasks := []api.Task{task(1, 1, api.TaskRunning, api.TaskPreparing, onNode("node-aaaaaaaaaaaaaaaa", api.PullProgress{Ref: "reg/web:v1", Done: 1_200_000, Total: 3_000_000}))}
	if got, want := ProgressOf(s, tasks, 1).Problem(), "node node-aaaaaaa still pulling reg/web:v1 1.2/3.0 MB"; got != want {
		t.Errorf("Problem() = %q, want %q", got, want)
	}
	tasks[0].Status.Pull = api.PullProgress{}
	if got := ProgressOf(s, tasks, 1).Problem(); strings.Contains(got, "pulling") {
		t.Errorf("Problem() = %q without a pull", got)
	}
}
