package apiserver

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docRoute is one row of the route table in docs/api.md.
type docRoute struct{ who, where string }

// docRouteRow matches "| `METHOD /path` | who | where | ...".
var docRouteRow = regexp.MustCompile("^\\| `(GET|POST|PUT|DELETE|PATCH) (/[^`]*)` \\| ([^|]+) \\| ([^|]+) \\|")

// normalisePath makes a documented path and a route pattern comparable:
// the query and optional parts are dropped and every wildcard is {}.
func normalisePath(p string) string {
	if i := strings.IndexAny(p, "?["); i >= 0 {
		p = p[:i]
	}
	return regexp.MustCompile(`\{[^}]*\}`).ReplaceAllString(p, "{}")
}

// TestDocListsEveryRoute compares the server's route table with the one in
// docs/api.md, both ways, including who may call each route and where it
// is served, so that neither can change without the other.
func TestDocListsEveryRoute(t *testing.T) {
	b, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := map[string]docRoute{}
	for _, line := range strings.Split(string(b), "\n") {
		m := docRouteRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		key := m[1] + " " + normalisePath(m[2])
		if _, dup := doc[key]; dup {
			t.Errorf("docs/api.md lists %s twice", key)
		}
		doc[key] = docRoute{who: strings.TrimSpace(m[3]), where: strings.TrimSpace(m[4])}
	}
	if len(doc) == 0 {
		t.Fatal("no route rows found in docs/api.md: did the table's format change?")
	}
	letters := map[Role]string{RoleAdmin: "A", RoleManager: "M", RoleWorker: "W", RoleNone: "none"}
	order := []string{"none", "W", "M", "A"}
	where := map[Forwarding]string{Local: "local", Read: "linearizable", Write: "leader"}

	c := newCluster(t)
	s := c.newServer(t, c.backend(t, "m1", true))
	served := map[string]bool{}
	for _, rt := range s.Routes() {
		key := rt.Method + " " + normalisePath(rt.Pattern)
		served[key] = true
		d, ok := doc[key]
		if !ok {
			t.Errorf("route %s %s is not documented in docs/api.md", rt.Method, rt.Pattern)
			continue
		}
		var who []string
		for _, r := range rt.Allowed {
			who = append(who, letters[r])
		}
		slices.SortFunc(who, func(a, b string) int { return slices.Index(order, a) - slices.Index(order, b) })
		if got := strings.Join(who, " "); d.who != got {
			t.Errorf("%s: docs/api.md says who %q, the route table %q", key, d.who, got)
		}
		if d.where != where[rt.Forward] {
			t.Errorf("%s: docs/api.md says where %q, the route table %q", key, d.where, where[rt.Forward])
		}
	}
	for key := range doc {
		if !served[key] {
			t.Errorf("docs/api.md documents %s, which the server does not serve", key)
		}
	}
}
