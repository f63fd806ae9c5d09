package apiserver

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/warrenhq/warren/controlplane/allocator"
	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/store"
)

// createBatcher commits the service creates that arrive while one is being
// applied together, in the next raft entry (group commit, like
// reportBatcher). Every create writes the cluster object (its VIP), so
// creates applied one by one each expected the version the others were
// moving: on a busy cluster most of them lost a round, re-read and tried
// again, and each try was another raft round. In one batch the VIPs are
// allocated in turn from the same cluster object, and the creates cannot
// conflict with each other.
//
// The batch is one atomic raft entry, so what could fail one create alone
// is decided before it is built: each create is checked against the store
// and against the creates ahead of it in the batch (a name two of them
// want goes to the first), and one that fails leaves the batch without
// reaching raft. What is left to fail in raft is the batch's own
// expectations, which concern all of it: then every create in it is
// checked again against the new state, as a lone create was.
type createBatcher = groupCommit[*createReq]

type createReq struct {
	id   string
	spec api.ServiceSpec
	done chan commitResult
}

// createApplyTimeout bounds one group commit; it does not follow any one
// caller's context, since the batch carries other callers' creates too.
const createApplyTimeout = 30 * time.Second

// createAttempts bounds the re-checks of a batch refused because the store
// moved under it (another writer of the cluster object, a node joining).
const createAttempts = 32

// queueCreate queues a create of the service id with spec and returns the
// result of the batch that carried it.
func (s *Server) queueCreate(ctx context.Context, id string, spec api.ServiceSpec) (uint64, error) {
	q := &createReq{id: id, spec: spec, done: make(chan commitResult, 1)}
	s.creates.add(q, func(qs []*createReq) {
		ctx, cancel := context.WithTimeout(context.Background(), createApplyTimeout)
		s.commitCreates(ctx, qs)
		cancel()
	})
	return awaitCommit(ctx, q.done)
}

// commitCreates answers every create in qs: with its own error if it
// cannot be made, else with the result of the one batch the others that can
// be made share.
func (s *Server) commitCreates(ctx context.Context, qs []*createReq) {
	for i := 1; len(qs) > 0; i++ {
		v := s.b.View()
		batch, ok, err := s.buildCreates(v, qs)
		if err != nil {
			for _, q := range qs {
				q.done <- commitResult{err: err}
			}
			return
		}
		if len(ok) == 0 {
			return
		}
		idx, err := s.apply(ctx, batch)
		var he *httpError
		if errors.As(err, &he) && he.status == http.StatusConflict && i < createAttempts {
			qs = ok
			continue
		}
		for _, q := range ok {
			q.done <- commitResult{index: idx, err: err}
		}
		return
	}
}

// buildCreates checks each create against v and the creates before it,
// answers the ones that fail, and returns the batch of the others with
// their requests. err concerns them all (no cluster object yet).
func (s *Server) buildCreates(v *store.View, qs []*createReq) (*store.Batch, []*createReq, error) {
	c, err := s.cluster(v)
	if err != nil {
		return nil, nil, err
	}
	next := *c
	others := servicePtrs(v)
	byName := map[string]string{}
	b := &store.Batch{Expect: []store.Expectation{{Kind: store.KindCluster, Version: c.Meta.Version}}}
	var ok []*createReq
	for _, q := range qs {
		sp := q.spec
		if err := s.checkSpecAmong(v, &sp, others); err != nil {
			q.done <- commitResult{err: err}
			continue
		}
		if first, taken := byName[sp.Name]; taken {
			q.done <- commitResult{err: errorf(http.StatusConflict, "service %q: name: already used by service %s", sp.Name, first)}
			continue
		}
		n, vip, err := allocator.AllocateVIP(next, q.id)
		if err != nil {
			q.done <- commitResult{err: errorf(http.StatusServiceUnavailable, "service %q: no virtual IP: %v", sp.Name, err)}
			continue
		}
		next = n
		svc := api.Service{
			ID: q.id, Spec: sp, SpecVersion: 1, Generation: 1,
			Endpoint: api.Endpoint{VIP: vip, Ports: slices.Clone(sp.Ports)},
		}
		b.Expect = append(b.Expect, store.Expectation{Kind: store.KindService, ID: q.id, Version: 0})
		b.PutServices = append(b.PutServices, svc)
		others = append(others, &svc)
		byName[sp.Name] = q.id
		ok = append(ok, q)
	}
	b.Cluster = &next
	return b, ok, nil
}
