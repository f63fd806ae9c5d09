package apiserver

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/store"
)

// racingBackend commits another write to the cluster object between the
// handler's read and its first apply(s), as a concurrent create or a node
// join does on a busy cluster.
type racingBackend struct {
	*fakeBackend
	c     *cluster
	t     *testing.T
	mu    sync.Mutex
	races int
}

func (b *racingBackend) Apply(ctx context.Context, batch *store.Batch) (uint64, error) {
	b.mu.Lock()
	race := b.races > 0
	if race {
		b.races--
	}
	b.mu.Unlock()
	if race {
		cl := b.c.st.View().Cluster()
		moved := *cl
		moved.Subnets = map[string]string{"elsewhere": "10.42.99.0/24"}
		for k, v := range cl.Subnets {
			moved.Subnets[k] = v
		}
		b.c.apply(b.t, &store.Batch{Cluster: &moved})
	}
	return b.fakeBackend.Apply(ctx, batch)
}

func TestCreateServiceRetriesWhenTheClusterMoved(t *testing.T) {
	for _, c := range []struct {
		name   string
		races  int
		status int
	}{
		{"one concurrent cluster write is retried", 1, http.StatusCreated},
		{"several in a row are retried", 5, http.StatusCreated},
		// Bounded: a cluster that never settles still answers, with 409.
		{"a cluster that keeps moving gives up with a conflict", 100, http.StatusConflict},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := newCluster(t)
			b := &racingBackend{fakeBackend: cl.backend(t, "m1", true), c: cl, t: t, races: c.races}
			srv := cl.serve(t, cl.newServer(t, b).Handler())
			admin := cl.client(t, "admin", hostOf(srv))
			_, err := admin.CreateService(t.Context(), webSpec("web", 0))
			got := http.StatusCreated
			if err != nil {
				got = client.StatusOf(err)
			}
			if got != c.status {
				t.Fatalf("create with %d racing cluster writes: status %d (%v), want %d", c.races, got, err, c.status)
			}
			_, exists := cl.st.View().ServiceByName("web")
			if exists != (c.status == http.StatusCreated) {
				t.Fatalf("service stored = %v after status %d", exists, got)
			}
			if exists {
				svc, _ := cl.st.View().ServiceByName("web")
				if cl.st.View().Cluster().Subnets["elsewhere"] == "" || svc.Endpoint.VIP == "" {
					t.Fatalf("the retry must keep the concurrent write and allocate a VIP: subnets %v, vip %q", cl.st.View().Cluster().Subnets, svc.Endpoint.VIP)
				}
			}
		})
	}
}
