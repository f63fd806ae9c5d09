package nodenet

import (
	"reflect"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/dataplane"
)

// TestBackendTraffic: a task's connections and errors are summed over the
// service entries that count it (one per port set, or a stale name).
func TestBackendTraffic(t *testing.T) {
	got := backendTraffic([]dataplane.ServiceCounters{
		{Service: "web", Backends: map[string]uint64{"t1": 10, "t2": 5},
			Errors: map[string]dataplane.BackendErrors{"t1": {Resets: 2}}},
		{Service: "svc-web", Backends: map[string]uint64{"t1": 3},
			Errors: map[string]dataplane.BackendErrors{"t1": {ConnectFailures: 1}, "t3": {Resets: 1}}},
	})
	want := map[string]api.BackendTraffic{
		"t1": {TaskID: "t1", Connections: 13, ConnectFailures: 1, Resets: 2},
		"t2": {TaskID: "t2", Connections: 5},
		"t3": {TaskID: "t3", Resets: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}
