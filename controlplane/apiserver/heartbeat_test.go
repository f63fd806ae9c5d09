package apiserver

import (
	"sync"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// recordingBackend is a leader that keeps heartbeats in memory.
type recordingBackend struct {
	*fakeBackend
	mu   sync.Mutex
	seen map[string]time.Time
}

func (r *recordingBackend) RecordHeartbeat(id string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[id] = at
}

// TestHeartbeatStaysOutOfRaft: the first registration (and any change) is a
// raft write; a heartbeat that changes nothing but its time is not.
func TestHeartbeatStaysOutOfRaft(t *testing.T) {
	c := newCluster(t)
	rb := &recordingBackend{fakeBackend: c.backend(t, "m1", true), seen: map[string]time.Time{}}
	s, err := New(Config{Backend: rb, CAPool: c.ca.Pool, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	srv := c.serve(t, s.Handler())
	worker := c.client(t, "worker", hostOf(srv))
	reg := api.NodeRegistration{Hostname: "w", Addr: "192.0.2.1", OS: "linux", Arch: "amd64", Network: api.NodeNetwork{WGPublicKey: "k1"}}

	if err := worker.Register(t.Context(), reg); err != nil {
		t.Fatal(err)
	}
	first := c.st.View().Index()
	if n, _ := c.st.View().Node("w1"); n.Status.State != api.NodeReady {
		t.Fatalf("first registration not written: %+v", n.Status)
	}
	if err := worker.Register(t.Context(), reg); err != nil {
		t.Fatal(err)
	}
	if got := c.st.View().Index(); got != first {
		t.Errorf("an unchanged heartbeat moved the raft index %d → %d", first, got)
	}
	if _, ok := rb.seen["w1"]; !ok {
		t.Error("the heartbeat was not recorded in memory")
	}
	reg.Network.WGPublicKey = "k2" // a rekeyed node: a real change
	if err := worker.Register(t.Context(), reg); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.st.View().Node("w1"); n.Status.Network.WGPublicKey != "k2" || c.st.View().Index() == first {
		t.Errorf("a changed registration was not written: %+v", n.Status.Network)
	}
}

// TestHeartbeatTraffic: the canary-analysis counts a heartbeat carries are
// stored in the node's status, written only when they changed.
func TestHeartbeatTraffic(t *testing.T) {
	c := newCluster(t)
	rb := &recordingBackend{fakeBackend: c.backend(t, "m1", true), seen: map[string]time.Time{}}
	s, err := New(Config{Backend: rb, CAPool: c.ca.Pool, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	srv := c.serve(t, s.Handler())
	worker := c.client(t, "worker", hostOf(srv))
	reg := api.NodeRegistration{Hostname: "w", Addr: "192.0.2.1", OS: "linux", Arch: "amd64"}
	if err := worker.Register(t.Context(), reg); err != nil {
		t.Fatal(err)
	}
	reg.Traffic = []api.BackendTraffic{{TaskID: "t1", Connections: 120, Resets: 7}, {TaskID: "t2", Connections: 900}}
	if err := worker.Register(t.Context(), reg); err != nil {
		t.Fatal(err)
	}
	written := c.st.View().Index()
	if n, _ := c.st.View().Node("w1"); len(n.Status.Traffic) != 2 || n.Status.Traffic[0].Resets != 7 {
		t.Fatalf("traffic not stored: %+v", n.Status.Traffic)
	}
	if err := worker.Register(t.Context(), reg); err != nil {
		t.Fatal(err)
	}
	if got := c.st.View().Index(); got != written {
		t.Errorf("unchanged traffic moved the raft index %d → %d", written, got)
	}
	reg.Traffic = nil // the canary ended
	if err := worker.Register(t.Context(), reg); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.st.View().Node("w1"); len(n.Status.Traffic) != 0 {
		t.Errorf("traffic kept after the node stopped reporting it: %+v", n.Status.Traffic)
	}
}
