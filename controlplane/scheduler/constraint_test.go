package scheduler

import (
	"strings"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
)

func TestParseConstraint(t *testing.T) {
	cases := []struct {
		in      string
		want    Constraint
		wantErr string // substring; empty means success
	}{
		{in: "node.labels.site==a", want: Constraint{"node.labels.site", OpEqual, "a"}},
		{in: " node.labels.site != a ", want: Constraint{"node.labels.site", OpNotEqual, "a"}},
		{in: "node.role==manager", want: Constraint{"node.role", OpEqual, "manager"}},
		{in: "node.role!=Worker", want: Constraint{"node.role", OpNotEqual, "Worker"}},
		{in: "node.hostname==edge-1", want: Constraint{"node.hostname", OpEqual, "edge-1"}},
		{in: "node.id==n1", want: Constraint{"node.id", OpEqual, "n1"}},
		{in: "node.platform.os==linux", want: Constraint{"node.platform.os", OpEqual, "linux"}},
		{in: "node.platform.arch!=arm64", want: Constraint{"node.platform.arch", OpNotEqual, "arm64"}},
		{in: "engine.labels.gpu==true", want: Constraint{"engine.labels.gpu", OpEqual, "true"}},
		{in: "node.labels.k=v", wantErr: "missing operator"},
		{in: "==a", wantErr: "missing key"},
		{in: "node.labels.site==", wantErr: "missing value"},
		{in: "node.labels.==a", wantErr: "missing label name"},
		{in: "engine.labels.!=a", wantErr: "missing label name"},
		{in: "node.role==boss", wantErr: "node.role must be"},
		{in: "node.colour==red", wantErr: `unknown key "node.colour"`},
		{in: "node.labels.a==b==c", wantErr: "more than one operator"},
		{in: "node.labels.a!=b==c", wantErr: "more than one operator"},
	}
	for _, tc := range cases {
		got, err := ParseConstraint(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseConstraint(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseConstraint(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		// The canonical form parses back to the same constraint.
		if again, err := ParseConstraint(got.String()); err != nil || again != got {
			t.Errorf("round trip of %q: %v, %v", got.String(), again, err)
		}
	}
}

func TestParseConstraintsNamesIndex(t *testing.T) {
	_, err := ParseConstraints([]string{"node.role==worker", "node.labels.x"})
	if err == nil || !strings.HasPrefix(err.Error(), "constraints[1]: ") {
		t.Fatalf("err = %v, want it to name constraints[1]", err)
	}
}

func TestConstraintMatches(t *testing.T) {
	n := &api.Node{
		ID:     "n1",
		Spec:   api.NodeSpec{Role: api.RoleWorker, Labels: map[string]string{"site": "a"}},
		Status: api.NodeStatus{Hostname: "Edge-1", OS: "linux", Arch: "amd64", Labels: map[string]string{"gpu": "true"}},
	}
	cases := []struct {
		c    string
		want bool
	}{
		{"node.labels.site==a", true},
		{"node.labels.site==b", false},
		{"node.labels.site!=b", true},
		{"node.labels.zone==a", false},
		{"node.labels.zone!=a", true},    // missing label is "not equal"
		{"node.labels.gpu==true", false}, // engine labels are not operator labels
		{"engine.labels.gpu==true", true},
		{"engine.labels.site==a", false},
		{"node.role==worker", true},
		{"node.role==manager", false},
		{"node.role!=manager", true},
		{"node.hostname==edge-1", true}, // hostnames compare case-insensitively
		{"node.id==n1", true},
		{"node.id==N1", false}, // IDs are exact
		{"node.platform.os==linux", true},
		{"node.platform.arch==arm64", false},
	}
	for _, tc := range cases {
		c, err := ParseConstraint(tc.c)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Matches(n); got != tc.want {
			t.Errorf("%s matches = %v, want %v", tc.c, got, tc.want)
		}
	}
}

// placementCases are whole placements against nodes; both the predicate
// table and the scheduler-agreement test read them.
var placementCases = []struct {
	name string
	cons []string
	node api.Node
	want bool
}{
	{"no constraint matches any node", nil, api.Node{ID: "n1"}, true},
	{"one term holds", []string{"node.labels.site==a"}, siteNode("a"), true},
	{"one term fails", []string{"node.labels.site==a"}, siteNode("b"), false},
	{"all terms hold", []string{"node.labels.site==a", "node.role==worker", "node.platform.os==linux"}, siteNode("a"), true},
	{"last term fails", []string{"node.labels.site==a", "node.role==manager"}, siteNode("a"), false},
	{"first term fails", []string{"node.labels.site!=a", "node.role==worker"}, siteNode("a"), false},
	{"missing label is not equal", []string{"node.labels.site!=a"}, api.Node{ID: "n1"}, true},
	{"missing label never equals", []string{"node.labels.site==a"}, api.Node{ID: "n1"}, false},
	{"engine label is not an operator label", []string{"node.labels.gpu==true"}, siteNode("a"), false},
}

func siteNode(site string) api.Node {
	return api.Node{ID: "n-" + site,
		Spec:   api.NodeSpec{Role: api.RoleWorker, Availability: api.AvailabilityActive, Labels: map[string]string{"site": site}},
		Status: api.NodeStatus{State: api.NodeReady, OS: "linux", Arch: "amd64", Labels: map[string]string{"gpu": "true"}}}
}

func TestConstraintsMatches(t *testing.T) {
	for _, tc := range placementCases {
		cs, err := ParseConstraints(tc.cons)
		if err != nil {
			t.Fatal(err)
		}
		if got := cs.Matches(&tc.node); got != tc.want {
			t.Errorf("%s: %v matches %s = %v, want %v", tc.name, tc.cons, tc.node.ID, got, tc.want)
		}
	}
}

// TestFiltersAgreeWithMatches holds the scheduler's constraint filters to the
// predicate the global orchestrator uses: on a ready, active node a task
// passes them exactly when Constraints.Matches says the node matches, so the
// orchestrator never wants a global task the scheduler would refuse (or the
// reverse) because of its constraints.
func TestFiltersAgreeWithMatches(t *testing.T) {
	for _, tc := range placementCases {
		task := &api.Task{ID: "t", ServiceID: "s", Spec: api.TaskSpec{Placement: api.Placement{Constraints: tc.cons}}}
		fs, err := Filters(task)
		if err != nil {
			t.Fatal(err)
		}
		n := tc.node
		n.Status.State, n.Spec.Availability = api.NodeReady, api.AvailabilityActive
		got := passes(&NodeInfo{Node: &n, ServiceTasks: map[string]int{}}, fs)
		if got != tc.want {
			t.Errorf("%s: filters pass = %v, Constraints.Matches = %v", tc.name, got, tc.want)
		}
	}
}

func TestActive(t *testing.T) {
	for a, want := range map[api.Availability]bool{
		api.AvailabilityActive: true,
		"":                     true, // registered before an operator touched it
		api.AvailabilityPause:  false,
		api.AvailabilityDrain:  false,
	} {
		if got := Active(&api.Node{Spec: api.NodeSpec{Availability: a}}); got != want {
			t.Errorf("Active(%q) = %v, want %v", a, got, want)
		}
	}
}
