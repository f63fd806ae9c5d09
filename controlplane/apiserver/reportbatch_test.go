package apiserver

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/store"
)

// gatedBackend holds its first Apply until gate closes, so reports arriving
// meanwhile must queue behind it.
type gatedBackend struct {
	*fakeBackend
	calls   atomic.Int64
	entered chan struct{}
	gate    chan struct{}
}

func (b *gatedBackend) Apply(ctx context.Context, batch *store.Batch) (uint64, error) {
	if b.calls.Add(1) == 1 {
		close(b.entered)
		<-b.gate
	}
	return b.fakeBackend.Apply(ctx, batch)
}

func TestStatusReportsQueuedBehindACommitGoOutAsOneEntry(t *testing.T) {
	c := newCluster(t)
	const n = 6
	var tasks []api.Task
	for i := range n {
		tasks = append(tasks, api.Task{ID: fmt.Sprintf("t%d", i), ServiceID: "s", NodeID: "w1", DesiredState: api.TaskRunning,
			Status: api.TaskStatus{State: api.TaskAssigned}})
	}
	c.apply(t, &store.Batch{PutTasks: tasks})
	b := &gatedBackend{fakeBackend: c.backend(t, "m1", true), entered: make(chan struct{}), gate: make(chan struct{})}
	s := c.newServer(t, b)
	srv := c.serve(t, s.Handler())
	worker := c.client(t, "worker", hostOf(srv))
	report := func(id string, wg *sync.WaitGroup) {
		defer wg.Done()
		if err := worker.ReportStatus(t.Context(), api.StatusReport{Tasks: map[string]api.TaskStatus{id: {State: api.TaskRunning}}}); err != nil {
			t.Error(err)
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go report("t0", &wg)
	<-b.entered
	for i := 1; i < n; i++ {
		wg.Add(1)
		go report(fmt.Sprintf("t%d", i), &wg)
	}
	// Every later report is queued (not yet applied) before the first commit returns.
	for {
		queued := s.reports.queued()
		if queued == n-1 {
			break
		}
		select {
		case <-t.Context().Done():
			t.Fatal("reports did not queue")
		case <-time.After(time.Millisecond):
		}
	}
	close(b.gate)
	wg.Wait()
	if got := b.calls.Load(); got != 2 {
		t.Errorf("%d raft applies for %d reports, want 2 (the first, then the %d queued behind it as one)", got, n, n-1)
	}
	v := c.st.View()
	for i := range n {
		if tk, _ := v.Task(fmt.Sprintf("t%d", i)); tk.Status.State != api.TaskRunning {
			t.Errorf("t%d is %s after its report, want running", i, tk.Status.State)
		}
	}
}
