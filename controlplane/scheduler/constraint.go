package scheduler

import (
	"fmt"
	"strings"

	"github.com/warrenhq/warren/controlplane/api"
)

// Operator compares a node attribute with a constraint's value.
type Operator string

const (
	OpEqual    Operator = "=="
	OpNotEqual Operator = "!="
)

// Constraint is one parsed placement constraint, e.g. node.labels.site==a.
type Constraint struct {
	// Key is the attribute as written: node.id, node.hostname, node.role,
	// node.platform.os, node.platform.arch, node.labels.<k>, engine.labels.<k>.
	Key      string
	Operator Operator
	Value    string
}

// The attributes a constraint may name. Operator labels (node.labels) are
// kept apart from the labels the engine reports about itself
// (engine.labels), as in Docker Swarm, so an agent cannot grant itself a
// placement the operator reserved.
const (
	keyNodeID       = "node.id"
	keyHostname     = "node.hostname"
	keyRole         = "node.role"
	keyOS           = "node.platform.os"
	keyArch         = "node.platform.arch"
	prefixLabels    = "node.labels."
	prefixEngLabels = "engine.labels."
)

// ParseConstraint parses "key==value" or "key!=value". The error says what
// is wrong in words an operator can act on; callers prefix the field name.
func ParseConstraint(s string) (Constraint, error) {
	var c Constraint
	i := strings.Index(s, string(OpEqual))
	j := strings.Index(s, string(OpNotEqual))
	switch {
	case i < 0 && j < 0:
		return c, fmt.Errorf("constraint %q: missing operator (want key==value or key!=value)", s)
	case i >= 0 && (j < 0 || i < j):
		c.Operator, c.Key, c.Value = OpEqual, s[:i], s[i+2:]
	default:
		c.Operator, c.Key, c.Value = OpNotEqual, s[:j], s[j+2:]
	}
	c.Key = strings.TrimSpace(c.Key)
	c.Value = strings.TrimSpace(c.Value)
	if strings.Contains(c.Value, "==") || strings.Contains(c.Value, "!=") {
		return Constraint{}, fmt.Errorf("constraint %q: more than one operator", s)
	}
	if c.Key == "" {
		return Constraint{}, fmt.Errorf("constraint %q: missing key before %s", s, c.Operator)
	}
	if c.Value == "" {
		return Constraint{}, fmt.Errorf("constraint %q: missing value after %s", s, c.Operator)
	}
	switch {
	case c.Key == keyNodeID, c.Key == keyHostname, c.Key == keyOS, c.Key == keyArch:
	case c.Key == keyRole:
		if r := api.NodeRole(strings.ToLower(c.Value)); r != api.RoleManager && r != api.RoleWorker {
			return Constraint{}, fmt.Errorf("constraint %q: node.role must be %s or %s", s, api.RoleManager, api.RoleWorker)
		}
	case strings.HasPrefix(c.Key, prefixLabels):
		if len(c.Key) == len(prefixLabels) {
			return Constraint{}, fmt.Errorf("constraint %q: missing label name after %s", s, prefixLabels)
		}
	case strings.HasPrefix(c.Key, prefixEngLabels):
		if len(c.Key) == len(prefixEngLabels) {
			return Constraint{}, fmt.Errorf("constraint %q: missing label name after %s", s, prefixEngLabels)
		}
	default:
		return Constraint{}, fmt.Errorf("constraint %q: unknown key %q (want node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.<name> or engine.labels.<name>)", s, c.Key)
	}
	return c, nil
}

// Constraints is a task's whole placement, parsed.
type Constraints []Constraint

// ParseConstraints parses a whole placement; the error names the index so
// the API can point at the offending field (placement.constraints[2]).
func ParseConstraints(ss []string) (Constraints, error) {
	out := make(Constraints, 0, len(ss))
	for i, s := range ss {
		c, err := ParseConstraint(s)
		if err != nil {
			return nil, fmt.Errorf("constraints[%d]: %w", i, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// String renders the constraint in its canonical form.
func (c Constraint) String() string { return c.Key + string(c.Operator) + c.Value }

// Matches reports whether node satisfies the constraint. A label that the
// node does not carry never equals anything, so != matches it (Swarm does
// the same: "not in site a" includes nodes with no site).
func (c Constraint) Matches(n *api.Node) bool {
	var have string
	var ok, fold bool
	switch {
	case c.Key == keyNodeID:
		have, ok = n.ID, true
	case c.Key == keyHostname:
		have, ok, fold = n.Status.Hostname, true, true
	case c.Key == keyRole:
		have, ok, fold = string(n.Spec.Role), true, true
	case c.Key == keyOS:
		have, ok, fold = n.Status.OS, true, true
	case c.Key == keyArch:
		have, ok, fold = n.Status.Arch, true, true
	case strings.HasPrefix(c.Key, prefixLabels):
		have, ok = n.Spec.Labels[c.Key[len(prefixLabels):]]
	case strings.HasPrefix(c.Key, prefixEngLabels):
		have, ok = n.Status.Labels[c.Key[len(prefixEngLabels):]]
	}
	eq := ok && (have == c.Value || fold && strings.EqualFold(have, c.Value))
	if c.Operator == OpEqual {
		return eq
	}
	return !eq
}

// Matches reports whether node satisfies every constraint; no constraint
// matches every node. It is the one placement predicate: the global
// orchestrator asks it which nodes want a task, and the scheduler evaluates
// its terms as one filter per constraint so that a refusal names the
// constraint (TestFiltersAgreeWithMatches holds the two together).
func (cs Constraints) Matches(n *api.Node) bool {
	for _, c := range cs {
		if !c.Matches(n) {
			return false
		}
	}
	return true
}

// Active reports whether the operator lets node take new tasks. An empty
// availability is active: a node registered before an operator touched it
// accepts work. Paused and drained nodes keep (paused) or lose (drained)
// what they run, which is the orchestrator's business, not placement's.
func Active(n *api.Node) bool {
	a := n.Spec.Availability
	return a == api.AvailabilityActive || a == ""
}
