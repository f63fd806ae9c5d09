package apiserver

import (
	"cmp"
	"errors"
	"net/http"
	"reflect"
	"slices"

	"github.com/warrenhq/warren/controlplane/allocator"
	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/orchestrator"
	"github.com/warrenhq/warren/controlplane/store"
)

// findService resolves a service by ID, then by name.
func findService(v *store.View, ref string) (api.Service, error) {
	if svc, ok := v.Service(ref); ok {
		return svc, nil
	}
	if svc, ok := v.ServiceByName(ref); ok {
		return svc, nil
	}
	return api.Service{}, errorf(http.StatusNotFound, "service %q not found", ref)
}

func servicePtrs(v *store.View) []*api.Service {
	all := v.Services()
	out := make([]*api.Service, len(all))
	for i := range all {
		out[i] = &all[i]
	}
	return out
}

func (s *Server) checkSpec(v *store.View, spec *api.ServiceSpec, selfID string) error {
	return s.checkSpecWith(v, spec, selfID, servicePtrs(v))
}

// checkSpecAmong checks a new service's spec against the store and the
// services others, which are the store's and those created ahead of it in
// the same batch.
func (s *Server) checkSpecAmong(v *store.View, spec *api.ServiceSpec, others []*api.Service) error {
	return s.checkSpecWith(v, spec, "", others)
}

func (s *Server) checkSpecWith(v *store.View, spec *api.ServiceSpec, selfID string, others []*api.Service) error {
	if err := resolveSecretRefs(v, spec); err != nil {
		return err
	}
	if err := validateSpec(*spec, selfID, others); err != nil {
		return errorf(http.StatusBadRequest, "%v", err)
	}
	if err := checkVolumeMounts(v, *spec); err != nil {
		return err
	}
	if other, ok := v.ServiceByName(spec.Name); ok && other.ID != selfID {
		return errorf(http.StatusConflict, "service %q: name: already used by service %s", spec.Name, other.ID)
	}
	return nil
}

// createService allocates the service's VIP in the cluster object, which
// every other create (and every node join) also writes. Creates are
// therefore committed in batches (createbatch.go), which re-check and retry
// a batch the store moved under, so that only a real conflict (the name
// taken meanwhile) reaches the operator.
func (s *Server) createService(w http.ResponseWriter, r *http.Request, _ Identity) error {
	spec, err := decodeSpec(r)
	if err != nil {
		return err
	}
	spec = withDefaults(spec)
	warnings, err := s.prepareImage(r, &spec, nil)
	if err != nil {
		return err
	}
	id, err := api.NewID(s.cfg.Rand)
	if err != nil {
		return err
	}
	idx, err := s.queueCreate(r.Context(), id, spec)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, client.WriteResult{Index: idx, ID: id, Generation: 1, Warnings: warnings})
	return nil
}

func (s *Server) listServices(w http.ResponseWriter, r *http.Request, _ Identity) error {
	v := s.b.View()
	all := v.Services()
	slices.SortFunc(all, func(a, b api.Service) int { return cmp.Compare(a.Spec.Name, b.Spec.Name) })
	writeIndex(w, v.Index())
	writeJSON(w, http.StatusOK, nonNil(all))
	return nil
}

func (s *Server) inspectService(w http.ResponseWriter, r *http.Request, _ Identity) error {
	v := s.b.View()
	svc, err := findService(v, r.PathValue("ref"))
	if err != nil {
		return err
	}
	writeIndex(w, v.Index())
	writeJSON(w, http.StatusOK, svc)
	return nil
}

// changeService applies an operator's change to the service ref names and
// counts it in the service's Generation. The leader writes rollout status
// to the same object often while a rollout runs, and the change does not
// depend on that status being the latest, so a write refused because the
// object moved in between is re-read and tried again rather than handed to
// the operator as a conflict. change returns nil for "nothing to do".
func (s *Server) changeService(w http.ResponseWriter, r *http.Request, ref string, change func(v *store.View, svc api.Service) (*api.Service, error)) error {
	const attempts = 5
	for i := 1; ; i++ {
		v := s.b.View()
		svc, err := findService(v, ref)
		if err != nil {
			return err
		}
		next, err := change(v, svc)
		if err != nil {
			return err
		}
		if next == nil {
			writeJSON(w, http.StatusOK, client.WriteResult{Index: v.Index(), ID: svc.ID, Generation: svc.Generation, Warnings: warningsOf(r)})
			return nil
		}
		next.Generation = svc.Generation + 1
		b := &store.Batch{
			Expect:      []store.Expectation{{Kind: store.KindService, ID: svc.ID, Version: svc.Meta.Version}},
			PutServices: []api.Service{*next},
		}
		idx, err := s.apply(r.Context(), b)
		var he *httpError
		if errors.As(err, &he) && he.status == http.StatusConflict && i < attempts {
			continue
		}
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, client.WriteResult{Index: idx, ID: svc.ID, Generation: next.Generation, Warnings: warningsOf(r)})
		return nil
	}
}

// updateService replaces the spec and keeps the old one for rollback. A new
// SpecVersion is what tells the orchestrator to roll tasks. On a canary
// waiting for promotion, a spec that differs only in its canary weight is a
// step of that canary: the weights change, not the spec version.
func (s *Server) updateService(w http.ResponseWriter, r *http.Request, _ Identity) error {
	spec, err := decodeSpec(r)
	if err != nil {
		return err
	}
	spec = withDefaults(spec)
	// Resolved once, before the retried change: a registry round trip per
	// attempt would make a busy service slower to update.
	if cur, err := findService(s.b.View(), r.PathValue("ref")); err == nil {
		warnings, err := s.prepareImage(r, &spec, &cur.Spec)
		if err != nil {
			return err
		}
		r = withWarnings(r, warnings)
	}
	return s.changeService(w, r, r.PathValue("ref"), func(v *store.View, svc api.Service) (*api.Service, error) {
		if spec.Name != svc.Spec.Name {
			// The name is the service's DNS name and what operators and compose
			// files refer to it by: an update that changed it would make the
			// service named in the path disappear.
			return nil, errorf(http.StatusBadRequest, "service %q: name: cannot change to %q; renames are refused (create the new service, then remove the old one)", svc.Spec.Name, spec.Name)
		}
		if spec.Mode != svc.Spec.Mode {
			return nil, errorf(http.StatusBadRequest, "service %q: mode: cannot change from %s to %s; remove and create the service", svc.Spec.Name, svc.Spec.Mode, spec.Mode)
		}
		if err := s.checkSpec(v, &spec, svc.ID); err != nil {
			return nil, err
		}
		if reflect.DeepEqual(spec, svc.Spec) {
			return nil, nil
		}
		if canaryStep(svc, spec) {
			next, err := orchestrator.SetCanaryWeight(svc, spec.Update.CanaryWeight, s.cfg.Now())
			if err != nil {
				return nil, errorf(http.StatusBadRequest, "service %q: canary_weight: %v", svc.Spec.Name, err)
			}
			next.Spec = spec
			return &next, nil
		}
		prev := svc.Spec
		svc.PreviousSpec = &prev
		svc.Spec = spec
		svc.SpecVersion++
		svc.Endpoint.Ports = slices.Clone(spec.Ports)
		// A new spec starts a new rollout: the orchestrator decides its state.
		svc.Update = nil
		return &svc, nil
	})
}

// canaryStep reports whether spec only moves the weight of svc's waiting
// canary (the automatic steps may change with it).
func canaryStep(svc api.Service, spec api.ServiceSpec) bool {
	if svc.Update == nil || svc.Update.State != api.UpdateAwaitingPromote || svc.Spec.Update.Strategy != api.StrategyCanary {
		return false
	}
	a, b := svc.Spec, spec
	a.Update.CanaryWeight, b.Update.CanaryWeight = 0, 0
	a.Update.CanarySteps, b.Update.CanarySteps = nil, nil
	a.Update.CanaryInterval, b.Update.CanaryInterval = 0, 0
	return reflect.DeepEqual(a, b) && spec.Update.CanaryWeight != svc.Spec.Update.CanaryWeight
}

// scaleService changes only the replica count. SpecVersion stays: the task
// template is unchanged, so no running task has to be replaced.
func (s *Server) scaleService(w http.ResponseWriter, r *http.Request, _ Identity) error {
	var req client.ScaleRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	return s.changeService(w, r, r.PathValue("ref"), func(v *store.View, svc api.Service) (*api.Service, error) {
		if svc.Spec.Mode == api.ModeGlobal {
			return nil, errorf(http.StatusBadRequest, "service %q: replicas: a global service runs one task per eligible node and cannot be scaled", svc.Spec.Name)
		}
		svc.Spec.Replicas = req.Replicas
		if err := checkVolumeMounts(v, svc.Spec); err != nil {
			return nil, err
		}
		return &svc, nil
	})
}

// removeService deletes the service, releases its VIP and asks every task to
// stop, in one batch. The batch expects the service and the cluster's VIP
// table as read; the leader writes rollout status to the one and every
// create or removal changes the other. A removal does not depend on
// either being the latest, so a batch refused as a conflict (nothing was
// applied) is re-read and tried again, like a create, rather than handed
// to the operator as "retry".
func (s *Server) removeService(w http.ResponseWriter, r *http.Request, _ Identity) error {
	const attempts = 32 // as createService: more than the concurrent writers
	for i := 1; ; i++ {
		err := s.removeOnce(w, r)
		if i < attempts && errors.Is(err, store.ErrConflict) {
			continue
		}
		return err
	}
}

func (s *Server) removeOnce(w http.ResponseWriter, r *http.Request) error {
	v := s.b.View()
	svc, err := findService(v, r.PathValue("ref"))
	if err != nil {
		return err
	}
	b := &store.Batch{
		Expect:         []store.Expectation{{Kind: store.KindService, ID: svc.ID, Version: svc.Meta.Version}},
		DeleteServices: []string{svc.ID},
	}
	if c := v.Cluster(); c != nil {
		if _, ok := c.VIPs[svc.ID]; ok {
			next := allocator.ReleaseVIP(*c, svc.ID)
			b.Cluster = &next
			b.Expect = append(b.Expect, store.Expectation{Kind: store.KindCluster, Version: c.Meta.Version})
		}
	}
	for _, t := range v.TasksByService(svc.ID) {
		if t.DesiredState != api.TaskRemove {
			t.DesiredState = api.TaskRemove
			b.PutTasks = append(b.PutTasks, t)
		}
	}
	forgetRegistryAuth(v, svc, b)
	idx, err := s.apply(r.Context(), b)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, client.WriteResult{Index: idx, ID: svc.ID})
	return nil
}

// promoteService ends the waiting phase of a canary or blue-green rollout;
// the orchestrator owns what promotion means (orchestrator.Promote).
func (s *Server) promoteService(w http.ResponseWriter, r *http.Request, _ Identity) error {
	return s.changeService(w, r, r.PathValue("ref"), func(_ *store.View, svc api.Service) (*api.Service, error) {
		st := svc.Spec.Update.Strategy
		if st != api.StrategyCanary && st != api.StrategyBlueGreen {
			return nil, errorf(http.StatusBadRequest, "service %q: update.strategy is %s: only canary and blue-green rollouts are promoted", svc.Spec.Name, st)
		}
		if svc.Update == nil || svc.Update.State != api.UpdateAwaitingPromote {
			return nil, errorf(http.StatusBadRequest, "service %q: no rollout is waiting to be promoted", svc.Spec.Name)
		}
		next := orchestrator.Promote(svc, s.cfg.Now())
		return &next, nil
	})
}

// rollbackService makes the previous spec current again (orchestrator.Rollback).
func (s *Server) rollbackService(w http.ResponseWriter, r *http.Request, _ Identity) error {
	return s.changeService(w, r, r.PathValue("ref"), func(_ *store.View, svc api.Service) (*api.Service, error) {
		next, err := orchestrator.Rollback(svc, s.cfg.Now(), "rollback requested by the operator")
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "service %q: %v", svc.Spec.Name, err)
		}
		next.Endpoint.Ports = slices.Clone(next.Spec.Ports)
		return &next, nil
	})
}

func (s *Server) listTasks(w http.ResponseWriter, r *http.Request, _ Identity) error {
	v := s.b.View()
	q := r.URL.Query()
	var tasks []api.Task
	switch {
	case q.Get("service") != "":
		svc, err := findService(v, q.Get("service"))
		if err != nil {
			return err
		}
		tasks = v.TasksByService(svc.ID)
	case q.Get("node") != "":
		n, err := findNode(v, q.Get("node"))
		if err != nil {
			return err
		}
		tasks = v.TasksByNode(n.ID)
	default:
		tasks = v.Tasks()
	}
	if q.Get("service") != "" && q.Get("node") != "" {
		n, err := findNode(v, q.Get("node"))
		if err != nil {
			return err
		}
		tasks = slices.DeleteFunc(tasks, func(t api.Task) bool { return t.NodeID != n.ID })
	}
	slices.SortFunc(tasks, func(a, b api.Task) int {
		return cmp.Or(cmp.Compare(a.ServiceName, b.ServiceName), cmp.Compare(a.Slot, b.Slot), cmp.Compare(a.ID, b.ID))
	})
	writeIndex(w, v.Index())
	writeJSON(w, http.StatusOK, nonNil(tasks))
	return nil
}
