package orchestrator

import (
	"reflect"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
)

// A global service whose pinned image lacks a node's platform has no task
// there (instead of one pending forever); an image of unknown platforms
// goes everywhere.
func TestGlobalSkipsNodesOfOtherPlatforms(t *testing.T) {
	s := newSim(t, 3)
	for _, id := range []string{"n1", "n2", "n3"} {
		s.node(id).Status.OS, s.node(id).Status.Arch = "linux", "amd64"
	}
	s.node("n2").Status.Arch = "arm64"
	svc := global("mon")
	svc.Spec.Task.Container.ImagePlatforms = []api.Platform{{OS: "linux", Architecture: "amd64"}}
	unknown := global("any")
	s.services = []api.Service{svc, unknown}
	r := s.reconcile()
	var mon, all []api.Task
	for _, c := range r.Create {
		if c.ServiceID == "mon" {
			mon = append(mon, c)
		} else {
			all = append(all, c)
		}
	}
	if got := nodesOf(mon); !reflect.DeepEqual(got, []string{"n1", "n3"}) {
		t.Fatalf("an amd64-only global service created tasks on %v, want [n1 n3]", got)
	}
	if got := nodesOf(all); !reflect.DeepEqual(got, []string{"n1", "n2", "n3"}) {
		t.Fatalf("a global service of unknown platforms created tasks on %v, want every node", got)
	}
}
