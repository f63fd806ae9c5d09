package client

import (
	"fmt"
	"sort"

	"github.com/warrenhq/warren/controlplane/api"
)

// NodePull is a node's pull of an image for a service, as its tasks
// report it (api.TaskStatus.Pull).
type NodePull struct {
	NodeID      string
	Ref         string
	Done, Total int64
}

// PullsOf is one NodePull per node and image among s's tasks that should
// run: the tasks of one image on one node wait for one pull, so their
// samples are of the same bytes and the furthest is the pull's.
func PullsOf(s api.Service, tasks []api.Task) []NodePull {
	type key struct{ node, ref string }
	by := map[key]*NodePull{}
	for _, t := range tasks {
		pr := t.Status.Pull
		if t.ServiceID != s.ID || t.DesiredState != api.TaskRunning || pr == (api.PullProgress{}) {
			continue
		}
		k := key{t.NodeID, pr.Ref}
		p := by[k]
		if p == nil {
			p = &NodePull{NodeID: t.NodeID, Ref: pr.Ref}
			by[k] = p
		}
		p.Done, p.Total = max(p.Done, pr.Done), max(p.Total, pr.Total)
	}
	out := make([]NodePull, 0, len(by))
	for _, p := range by {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].NodeID != out[j].NodeID {
			return out[i].NodeID < out[j].NodeID
		}
		return out[i].Ref < out[j].Ref
	})
	return out
}

// PullLine is a line of the pull view: Key names the node and image it is
// about, so a printer that does not redraw can print a line again only
// when its text changed.
type PullLine struct {
	Key, Text string
}

// PullView renders a service's pulls as `docker pull` does, a line per
// node pulling ("h2: pulling reg.lan/web:v1 1.2/3.0 MB"), and remembers
// which nodes it showed pulling, so that a finished pull's line is then
// replaced by what the node's tasks do ("h2: pulled reg.lan/web:v1,
// running") instead of vanishing.
type PullView struct {
	shown map[string]NodePull // by line key, as last shown
}

// Lines is the view now. names maps node IDs to hostnames; a node missing
// from it is shown by its short ID.
func (v *PullView) Lines(s api.Service, tasks []api.Task, names map[string]string) []PullLine {
	if v.shown == nil {
		v.shown = map[string]NodePull{}
	}
	now := map[string]bool{}
	for _, p := range PullsOf(s, tasks) {
		k := p.NodeID + " " + p.Ref
		v.shown[k], now[k] = p, true
	}
	keys := make([]string, 0, len(v.shown))
	for k := range v.shown {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]PullLine, 0, len(keys))
	for _, k := range keys {
		p := v.shown[k]
		node := nodeName(p.NodeID, names)
		if now[k] {
			out = append(out, PullLine{k, fmt.Sprintf("%s: pulling %s %s", node, p.Ref, FormatBytesOf(p.Done, p.Total))})
			continue
		}
		out = append(out, PullLine{k, fmt.Sprintf("%s: pulled %s, %s", node, p.Ref, nodeTasksState(s, tasks, p.NodeID))})
	}
	return out
}

// nodeTasksState is what s's tasks on a node do, in a word: "running" once
// one runs, else the furthest state, with its error.
func nodeTasksState(s api.Service, tasks []api.Task, node string) string {
	var best *api.Task
	for i := range tasks {
		t := &tasks[i]
		if t.ServiceID != s.ID || t.NodeID != node || t.DesiredState != api.TaskRunning {
			continue
		}
		if best == nil || best.Status.State.Before(t.Status.State) {
			best = t
		}
	}
	if best == nil {
		return "no task left"
	}
	st := string(best.Status.State)
	if best.Status.Err != "" {
		st += ": " + best.Status.Err
	}
	return st
}

func nodeName(id string, names map[string]string) string {
	if n := names[id]; n != "" {
		return n
	}
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// FormatBytesOf is "done/total UNIT" in the unit of total, decimal as
// docker prints pulls: "1.2/3.0 MB", "512/900 kB"; total 0 (not known
// yet) shows done alone.
func FormatBytesOf(done, total int64) string {
	ref := total
	if ref == 0 {
		ref = done
	}
	unit, div, prec := "B", 1.0, 0
	switch {
	case ref >= 1e9:
		unit, div, prec = "GB", 1e9, 1
	case ref >= 1e6:
		unit, div, prec = "MB", 1e6, 1
	case ref >= 1e3:
		unit, div, prec = "kB", 1e3, 0
	}
	if total == 0 {
		return fmt.Sprintf("%.*f %s", prec, float64(done)/div, unit)
	}
	return fmt.Sprintf("%.*f/%.*f %s", prec, float64(done)/div, prec, float64(total)/div, unit)
}

// NodeNames names nodes for the operator by hostname; nodes that share one
// (the clones of one VM image, or test nodes in network namespaces of one
// machine) are told apart by their short IDs: "edge (3f2a9c81d0e4)".
func NodeNames(nodes []api.Node) map[string]string {
	count := map[string]int{}
	for _, n := range nodes {
		count[n.Status.Hostname]++
	}
	out := make(map[string]string, len(nodes))
	for _, n := range nodes {
		h := n.Status.Hostname
		switch {
		case h == "":
			out[n.ID] = nodeName(n.ID, nil)
		case count[h] > 1:
			out[n.ID] = fmt.Sprintf("%s (%s)", h, nodeName(n.ID, nil))
		default:
			out[n.ID] = h
		}
	}
	return out
}
