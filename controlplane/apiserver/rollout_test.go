package apiserver

import (
	"reflect"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/store"
)

// TestCanaryStepAndGenerations: every operator write counts a generation
// (the CLI waits for the orchestrator to have seen it), and on a waiting
// canary a spec that changes only the weight is a step: same spec version,
// new weights; 100 promotes.
func TestCanaryStepAndGenerations(t *testing.T) {
	c := newCluster(t)
	be := c.backend(t, "m1", true)
	srv := c.serve(t, c.newServer(t, be).Handler())
	admin := c.client(t, "admin", hostOf(srv))
	ctx := t.Context()

	spec := webSpec("web", 0)
	spec.Replicas = 4
	spec.Update = api.UpdateConfig{Strategy: api.StrategyCanary, CanaryWeight: 10}
	res, err := admin.CreateService(ctx, spec)
	if err != nil || res.Generation != 1 {
		t.Fatalf("create: %+v %v", res, err)
	}
	scaled, err := admin.ScaleService(ctx, "web", 4)
	if err != nil || scaled.Generation != 2 {
		t.Fatalf("scale: %+v %v", scaled, err)
	}
	svc, _ := admin.Service(ctx, "web")
	spec = svc.Spec
	spec.Task.Container.Image = "warren/demo:2"
	if _, err := admin.UpdateService(ctx, "web", spec); err != nil {
		t.Fatal(err)
	}
	// What the orchestrator writes when it opens the canary.
	svc, _ = admin.Service(ctx, "web")
	svc.Update = &api.UpdateStatus{State: api.UpdateAwaitingPromote, Weights: map[string]uint32{"v1": 90, "v2": 10}}
	if _, err := be.Apply(ctx, &store.Batch{
		Expect:      []store.Expectation{{Kind: store.KindService, ID: svc.ID, Version: svc.Meta.Version}},
		PutServices: []api.Service{*svc},
	}); err != nil {
		t.Fatal(err)
	}
	spec.Update.CanaryWeight = 50
	step, err := admin.UpdateService(ctx, "web", spec)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := admin.Service(ctx, "web")
	if after.SpecVersion != svc.SpecVersion || after.Generation != step.Generation || step.Generation != svc.Generation+1 {
		t.Fatalf("step: spec version %d (was %d), generation %d (result %d, was %d)", after.SpecVersion, svc.SpecVersion, after.Generation, step.Generation, svc.Generation)
	}
	if !reflect.DeepEqual(after.Update.Weights, map[string]uint32{"v1": 50, "v2": 50}) || after.Update.State != api.UpdateAwaitingPromote || after.Spec.Update.CanaryWeight != 50 {
		t.Fatalf("step: %+v, canary weight %d", after.Update, after.Spec.Update.CanaryWeight)
	}
	if !reflect.DeepEqual(after.PreviousSpec, svc.PreviousSpec) {
		t.Fatal("a canary step replaced the spec kept for rollback")
	}
	spec.Update.CanaryWeight = 100
	if _, err := admin.UpdateService(ctx, "web", spec); err != nil {
		t.Fatal(err)
	}
	after, _ = admin.Service(ctx, "web")
	if after.SpecVersion != svc.SpecVersion || after.Update.State != api.UpdateUpdating {
		t.Fatalf("100: spec version %d, %+v", after.SpecVersion, after.Update)
	}
	// Not waiting any more: the same change is a new spec.
	spec.Update.CanaryWeight = 30
	if _, err := admin.UpdateService(ctx, "web", spec); err != nil {
		t.Fatal(err)
	}
	if after, _ = admin.Service(ctx, "web"); after.SpecVersion != svc.SpecVersion+1 || after.Update != nil {
		t.Fatalf("after promotion a weight is a spec change: version %d %+v", after.SpecVersion, after.Update)
	}
}
