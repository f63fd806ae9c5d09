package apiserver

import (
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/warrenhq/warren/controlplane/api"
)

// histCount is how many requests requestDuration holds for one series.
func histCount(t *testing.T, method, route, code string) uint64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(requestDuration)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["method"] == method && l["route"] == route && l["code"] == code {
				return m.GetHistogram().GetSampleCount()
			}
		}
	}
	return 0
}

func TestRequestLatencyIsByRoutePatternAndStatusClass(t *testing.T) {
	c := newCluster(t)
	srv := c.serve(t, c.newServer(t, c.backend(t, "m1", true)).Handler())
	admin := c.client(t, "admin", hostOf(srv))
	ok0 := histCount(t, http.MethodGet, "/v1/services/{ref}", "2xx")
	missing0 := histCount(t, http.MethodGet, "/v1/services/{ref}", "4xx")
	if _, err := admin.CreateService(t.Context(), webSpec("web", 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Service(t.Context(), "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Service(t.Context(), "nope"); err == nil {
		t.Fatal("inspect of a missing service succeeded")
	}
	if got := histCount(t, http.MethodGet, "/v1/services/{ref}", "2xx") - ok0; got != 1 {
		t.Errorf("GET /v1/services/{ref} 2xx: %d new samples, want 1", got)
	}
	if got := histCount(t, http.MethodGet, "/v1/services/{ref}", "4xx") - missing0; got != 1 {
		t.Errorf("GET /v1/services/{ref} 4xx: %d new samples, want 1 (the 404)", got)
	}
	for _, raw := range []string{"/v1/services/web", "/v1/services/nope"} {
		if n := histCount(t, http.MethodGet, raw, "2xx") + histCount(t, http.MethodGet, raw, "4xx"); n != 0 {
			t.Errorf("a series labelled with the raw path %s exists: object names must not become series", raw)
		}
	}
}

func TestTaskReportsCountCommittedStates(t *testing.T) {
	failed0 := testutil.ToFloat64(taskReports.WithLabelValues("failed"))
	running0 := testutil.ToFloat64(taskReports.WithLabelValues("running"))
	countReports(map[string]api.TaskStatus{
		"t1": {State: api.TaskRunning}, "t2": {State: api.TaskFailed}, "t3": {State: api.TaskFailed},
		"t4": {State: api.TaskPreparing}, // intermediate states are not outcomes
	})
	if d := testutil.ToFloat64(taskReports.WithLabelValues("failed")) - failed0; d != 2 {
		t.Errorf("failed: +%v, want +2", d)
	}
	if d := testutil.ToFloat64(taskReports.WithLabelValues("running")) - running0; d != 1 {
		t.Errorf("running: +%v, want +1", d)
	}
}

func TestCodeClass(t *testing.T) {
	for code, want := range map[int]string{0: "2xx", 200: "2xx", 201: "2xx", 404: "4xx", 409: "4xx", 503: "5xx"} {
		if got := codeClass(code); got != want {
			t.Errorf("codeClass(%d) = %q, want %q", code, got, want)
		}
	}
}
