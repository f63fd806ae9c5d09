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
