package apiserver

import (
	"sync"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// ackingBackend is a leader that keeps table acks in memory.
type ackingBackend struct {
	*fakeBackend
	mu   sync.Mutex
	acks map[string]api.TableAck
}

func (a *ackingBackend) RecordTableAck(id string, index uint64, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.acks[id] = api.TableAck{Index: index, At: at}
}

func (a *ackingBackend) TableAcks() map[string]api.TableAck {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]api.TableAck{}
	for k, v := range a.acks {
		out[k] = v
	}
	return out
}

// TestTableAckThroughHeartbeat: the table index a node reports in its
// heartbeat reaches the leader's memory — also when the heartbeat changes
// nothing else and stays out of raft — and GET /v1/tables shows it.
func TestTableAckThroughHeartbeat(t *testing.T) {
	c := newCluster(t)
	ab := &ackingBackend{fakeBackend: c.backend(t, "m1", true), acks: map[string]api.TableAck{}}
	s, err := New(Config{Backend: ab, CAPool: c.ca.Pool, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	srv := c.serve(t, s.Handler())
	worker := c.client(t, "worker", hostOf(srv))
	reg := api.NodeRegistration{Hostname: "w", Addr: "192.0.2.1", OS: "linux", Arch: "amd64", TableIndex: 7}
	if err := worker.Register(t.Context(), reg); err != nil {
		t.Fatal(err)
	}
	reg.TableIndex = 12
	if err := worker.Register(t.Context(), reg); err != nil {
		t.Fatal(err)
	}
	if got := ab.TableAcks()["w1"]; got.Index != 12 || !got.At.Equal(testNow) {
		t.Fatalf("ack %+v, want index 12 at %v", got, testNow)
	}
	admin := c.client(t, "admin", hostOf(srv))
	tb, err := admin.Tables(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !tb.Leader || tb.Index != c.st.View().Index() {
		t.Errorf("tables leader=%v index=%d, want true and %d", tb.Leader, tb.Index, c.st.View().Index())
	}
	var w *api.NodeTable
	for i := range tb.Nodes {
		if tb.Nodes[i].NodeID == "w1" {
			w = &tb.Nodes[i]
		}
	}
	if w == nil || w.Applied != 12 || w.State != api.NodeReady || w.Hostname != "w" {
		t.Fatalf("w1 in tables: %+v", tb.Nodes)
	}
	if waiting := tb.Waiting(13); len(waiting) == 0 {
		t.Error("a node at 12 is not waited for at 13")
	}
}
