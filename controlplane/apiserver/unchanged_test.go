package apiserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/store"
)

// A blocking query that runs out with the store still at the caller's
// index answers with the index alone, for clients that ask for it; a
// caller behind or ahead of the store, or an older agent, gets everything.
func TestAssignmentsUnchangedAnswerHoldsOnlyTheIndex(t *testing.T) {
	c := newCluster(t)
	c.apply(t, &store.Batch{PutTasks: []api.Task{
		{ID: "t1", ServiceID: "s", NodeID: "w1", DesiredState: api.TaskRunning, Status: api.TaskStatus{State: api.TaskAssigned}},
	}})
	srv := c.serve(t, c.newServer(t, c.backend(t, "m1", true)).Handler())
	worker := c.client(t, "worker", hostOf(srv))
	ctx := t.Context()
	full, err := worker.Assignments(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(full.Tasks) != 1 || full.Network.PodCIDR == "" {
		t.Fatalf("the first answer is not the full assignments: %+v", full)
	}
	idx := full.Index

	same, err := worker.Assignments(ctx, idx, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if same.Index != idx || len(same.Tasks) != 0 || same.Network.PodCIDR != "" {
		t.Fatalf("nothing changed since %d; want the index alone, got %+v", idx, same)
	}

	ahead, err := worker.Assignments(ctx, idx+5, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if ahead.Index != idx || len(ahead.Tasks) != 1 {
		t.Fatalf("a caller ahead of this store (failed over to a lagging manager) must get everything: %+v", ahead)
	}

	// An agent that does not ask (an older one) still gets everything.
	tr := &http.Transport{TLSClientConfig: c.tlsFor("worker")}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(fmt.Sprintf("https://%s/v1/agent/assignments?index=%d&wait=20ms", hostOf(srv), idx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var old api.Assignments
	if err := json.NewDecoder(resp.Body).Decode(&old); err != nil {
		t.Fatal(err)
	}
	if old.Index != idx || len(old.Tasks) != 1 {
		t.Fatalf("a query without unchanged=empty must get the full assignments: %+v", old)
	}
}
