package manager

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/planner"
	"github.com/warrenhq/warren/controlplane/store"
)

// BenchmarkPlanSteady is the leader's plan when nothing is left to do — the
// plan every status report wakes once the cluster has converged — at issue
// 19's size (2,000 nodes × 25 tasks; 500 × 20 under WARREN_BENCH_SMOKE):
// read the view, reconcile every service, find nothing to write. Its
// baseline is the floor of any plan that reads every task: copying the
// view's tasks once. It reports the plan's time and bytes allocated, and
// both as multiples of that copy.
func BenchmarkPlanSteady(b *testing.B) {
	nodes, perNode, services := issueSize()
	st, _ := tableStore(b, nodes, perNode, services)
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	cl := &api.Cluster{ID: "c", Network: api.ClusterNetworkSpec{PodCIDR: "10.64.0.0/10", ServiceCIDR: "10.43.0.0/16"},
		Subnets: map[string]string{}, VIPs: map[string]string{}}
	for _, n := range st.View().Nodes() {
		cl.Subnets[n.ID] = n.Status.Network.Subnet
	}
	for _, s := range st.View().Services() {
		cl.VIPs[s.ID] = s.Endpoint.VIP
	}
	applyBatch(b, st, &store.Batch{Cluster: cl})
	v := st.View()
	hbs := map[string]time.Time{}
	for _, n := range v.Nodes() {
		hbs[n.ID] = now
	}
	var plan func() *store.Batch
	plan = func() *store.Batch {
		snap := planner.Snapshot{Cluster: v.Cluster(), Nodes: v.Nodes(), Services: v.Services(), Tasks: v.Tasks(), Volumes: v.Volumes(), Heartbeats: hbs, LeaderSince: now.Add(-time.Hour)}
		return planner.Plan(snap, now, rand.New(rand.NewPCG(1, 2)), func() string { return "x" }).Batch
	}
	// What the store lacks of a converged cluster (the services' status
	// the leader keeps), written as the leader would, until a plan finds
	// nothing to do.
	for range 3 {
		batch := plan()
		if batch == nil {
			break
		}
		batch.Expect = nil
		applyBatch(b, st, batch)
		v = st.View()
	}
	if batch := plan(); batch != nil {
		b.Fatalf("the converged cluster's plan writes %d tasks, %d services, %d nodes, cluster %v: the benchmark would time a change",
			len(batch.PutTasks), len(batch.PutServices), len(batch.PutNodes), batch.Cluster != nil)
	}
	for range b.N {
		tCopy, aCopy := measure(10, func() { _ = v.Tasks() })
		tPlan, aPlan := measure(10, func() { _ = plan() })
		b.ReportMetric(float64(tPlan.Microseconds())/1000, "ms/plan")
		b.ReportMetric(aPlan/(1<<20), "MiB-alloc/plan")
		b.ReportMetric(float64(tPlan)/float64(tCopy), "x-copy-time")
		b.ReportMetric(aPlan/aCopy, "x-copy-alloc")
		b.Logf("%d nodes × %d tasks, converged: a plan %v (%.1f MiB allocated); one copy of the tasks %v (%.1f MiB)",
			nodes, perNode, tPlan, aPlan/(1<<20), tCopy, aCopy/(1<<20))
	}
}
