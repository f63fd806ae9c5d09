package agent

import (
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
)

func TestMayReadLogs(t *testing.T) {
	managers := &api.Assignments{ManagerIDs: []string{"m1", "m2", "m3"}}
	for _, c := range []struct {
		name string
		cur  *api.Assignments
		node string
		ok   bool
	}{
		{"a current manager", managers, "m2", true},
		{"a removed or demoted manager", managers, "m4", false},
		{"no assignments yet: the certificate decides", nil, "m4", true},
		{"managers of a release without IDs", &api.Assignments{Managers: []string{"192.0.2.1:2377"}}, "m4", true},
	} {
		err := mayReadLogs(c.cur, c.node)
		if (err == nil) != c.ok {
			t.Errorf("%s: mayReadLogs(%s) = %v, want allowed=%v", c.name, c.node, err, c.ok)
		}
	}
}
