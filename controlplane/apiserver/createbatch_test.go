package apiserver

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/store"
)

// heldCreateBackend holds its first Apply until the test opens the gate, so
// that creates arriving meanwhile queue for the next raft round; it counts
// the applies and the services each carried.
type heldCreateBackend struct {
	*fakeBackend
	held chan struct{}
	gate chan struct{}
	mu   sync.Mutex
	per  []int
}

func (b *heldCreateBackend) Apply(ctx context.Context, batch *store.Batch) (uint64, error) {
	b.mu.Lock()
	first := len(b.per) == 0
	b.per = append(b.per, len(batch.PutServices))
	b.mu.Unlock()
	if first {
		close(b.held)
		<-b.gate
	}
	return b.fakeBackend.Apply(ctx, batch)
}

func (b *heldCreateBackend) applies() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.per...)
}

func TestCreatesWhileAnApplyIsInFlightShareTheNextOne(t *testing.T) {
	cl := newCluster(t)
	b := &heldCreateBackend{fakeBackend: cl.backend(t, "m1", true), held: make(chan struct{}), gate: make(chan struct{})}
	s := cl.newServer(t, b)
	srv := cl.serve(t, s.Handler())
	admin := cl.client(t, "admin", hostOf(srv))

	type answer struct {
		res *client.WriteResult
		err error
	}
	create := func(spec api.ServiceSpec) <-chan answer {
		ch := make(chan answer, 1)
		go func() {
			res, err := admin.CreateService(context.Background(), spec)
			ch <- answer{res, err}
		}()
		return ch
	}
	first := create(webSpec("first", 0))
	<-b.held

	// Queued behind the first, in whatever order they arrive: three good
	// creates, two that want the name web-1, a name that is not a DNS
	// label, and two that want to publish port 8080. Of each pair the one
	// first in the batch wins and the other fails alone.
	specs := []api.ServiceSpec{
		webSpec("web-2", 0), webSpec("web-3", 0), webSpec("web-4", 0),
		webSpec("web-1", 0), webSpec("web-1", 0), webSpec("Not_A_Label", 0),
		webSpec("port-a", 8080), webSpec("port-b", 8080),
	}
	chans := make([]<-chan answer, len(specs))
	for i, sp := range specs {
		chans[i] = create(sp)
	}
	waitFor(t, func() bool {
		return s.creates.queued() == len(specs)
	})
	close(b.gate)

	if a := <-first; a.err != nil {
		t.Fatalf("first create: %v", a.err)
	}
	var good []*client.WriteResult
	status := make([]int, len(specs))
	for i, ch := range chans {
		a := <-ch
		status[i] = http.StatusCreated
		if a.err != nil {
			status[i] = client.StatusOf(a.err)
		}
		if a.err == nil {
			good = append(good, a.res)
		}
	}
	for i := range 3 {
		if status[i] != http.StatusCreated {
			t.Errorf("%s: status %d, want 201", specs[i].Name, status[i])
		}
	}
	if st := []int{status[3], status[4]}; !(st[0] == 201 && st[1] == 409 || st[0] == 409 && st[1] == 201) {
		t.Errorf("the two creates of web-1: statuses %v, want one 201 and one 409", st)
	}
	if status[5] != http.StatusBadRequest {
		t.Errorf("Not_A_Label: status %d, want 400", status[5])
	}
	if st := []int{status[6], status[7]}; (st[0] == 201) == (st[1] == 201) || min(st[0], st[1]) != 201 || max(st[0], st[1]) < 400 {
		t.Errorf("two creates publishing 8080: statuses %v, want one 201 and one refused", st)
	}
	if got := b.applies(); len(got) != 2 || got[0] != 1 || got[1] != 5 {
		t.Fatalf("applies carried %v services, want [1 5]: the first alone, then every good create queued behind it", got)
	}

	v := cl.st.View()
	vips := map[string]string{}
	for _, res := range good {
		svc, ok := v.Service(res.ID)
		if !ok {
			t.Fatalf("created %s is not in the store", res.ID)
		}
		if other, dup := vips[svc.Endpoint.VIP]; dup || svc.Endpoint.VIP == "" {
			t.Fatalf("service %s has VIP %q, also given to %s", svc.Spec.Name, svc.Endpoint.VIP, other)
		}
		vips[svc.Endpoint.VIP] = svc.Spec.Name
		if res.Index != good[0].Index {
			t.Fatalf("the batch's creates answered indexes %d and %d, want the one entry's", good[0].Index, res.Index)
		}
	}
	if n := len(v.Services()); n != 6 {
		t.Fatalf("store holds %d services, want 6 (first, web-1..4 and one of port-a, port-b)", n)
	}
}
