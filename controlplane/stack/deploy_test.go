package stack

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// fakeCluster runs services in memory: every poll (Sleep) moves each task
// one step towards running, then healthy; a service named in fail keeps
// failing its health check.
type fakeCluster struct {
	now       time.Time
	services  map[string]*api.Service
	tasks     map[string][]api.Task
	calls     []string
	unhealthy map[string]bool
	exitCode  map[string]int // services whose tasks end with this status
	// secrets holds secrets and configs by "kind/name"; volumes by name.
	secrets map[string]api.Secret
	volumes map[string]api.Volume
	data    map[string][]byte
}

func newFake() *fakeCluster {
	return &fakeCluster{now: time.Unix(0, 0), services: map[string]*api.Service{}, tasks: map[string][]api.Task{}, unhealthy: map[string]bool{}, exitCode: map[string]int{}}
}

func (f *fakeCluster) spawn(s *api.Service) {
	var ts []api.Task
	n := int(s.Spec.Replicas)
	for i := 1; i <= n; i++ {
		ts = append(ts, api.Task{ServiceID: s.ID, Slot: uint64(i), SpecVersion: s.SpecVersion, DesiredState: api.TaskRunning, Spec: s.Spec.Task,
			Status: api.TaskStatus{State: api.TaskPending}})
	}
	f.tasks[s.Spec.Name] = ts
}

func (f *fakeCluster) CreateService(_ context.Context, spec api.ServiceSpec) error {
	f.calls = append(f.calls, "create "+spec.Name)
	if err := f.refsExist(spec); err != nil {
		return err
	}
	s := &api.Service{ID: "id-" + spec.Name, Spec: spec, SpecVersion: 1}
	f.services[spec.Name] = s
	f.spawn(s)
	return nil
}

func (f *fakeCluster) UpdateService(_ context.Context, name string, spec api.ServiceSpec) error {
	f.calls = append(f.calls, "update "+name)
	s := f.services[name]
	s.Spec = spec
	s.SpecVersion++
	f.spawn(s)
	return nil
}

func (f *fakeCluster) ScaleService(_ context.Context, name string, n uint64) error {
	f.calls = append(f.calls, fmt.Sprintf("scale %s=%d", name, n))
	f.services[name].Spec.Replicas = n
	f.spawn(f.services[name])
	return nil
}

func (f *fakeCluster) RemoveService(_ context.Context, name string) error {
	f.calls = append(f.calls, "remove "+name)
	delete(f.services, name)
	return nil
}

func (f *fakeCluster) Service(_ context.Context, name string) (*api.Service, []api.Task, error) {
	s, ok := f.services[name]
	if !ok {
		return nil, nil, fmt.Errorf("no such service %s", name)
	}
	cp := *s
	return &cp, append([]api.Task(nil), f.tasks[name]...), nil
}

func (f *fakeCluster) sleep(_ context.Context, d time.Duration) error {
	f.now = f.now.Add(d)
	for name, ts := range f.tasks {
		for i := range ts {
			st := &ts[i].Status
			switch {
			case st.State == api.TaskPending:
				st.State = api.TaskStarting
			case st.State == api.TaskStarting:
				if code, ok := f.exitCode[name]; ok {
					st.State, st.ExitCode = api.TaskComplete, code
					continue
				}
				st.State = api.TaskRunning
				if ts[i].Spec.Health != nil {
					st.Health = api.HealthStarting
				}
			case st.State == api.TaskRunning && st.Health == api.HealthStarting:
				st.Health = api.HealthHealthy
				if f.unhealthy[name] {
					st.Health = api.HealthUnhealthy
				}
			}
		}
	}
	f.calls = append(f.calls, "tick")
	return nil
}

func (f *fakeCluster) opts() DeployOptions {
	return DeployOptions{Timeout: time.Minute, Poll: time.Second, Now: func() time.Time { return f.now }, Sleep: f.sleep}
}

func shop(t *testing.T) Stack {
	t.Helper()
	db := spec("db", "postgres")
	db.Task.Health = &api.HealthCheck{Kind: api.HealthExec, Command: []string{"pg_isready"}, Interval: api.Duration(time.Second), Timeout: api.Duration(time.Second)}
	migrate := spec("migrate", "app")
	migrate.Task.Restart.Condition = api.RestartNone
	app := spec("app", "app")
	app.Replicas = 2
	web := spec("web", "nginx")
	s := Stack{Services: []Service{
		{Name: "db", Spec: db},
		{Name: "migrate", Spec: migrate, DependsOn: []Dependency{{Service: "db", Condition: Healthy, Required: true}}},
		{Name: "app", Spec: app, DependsOn: []Dependency{{Service: "db", Condition: Healthy, Required: true}, {Service: "migrate", Condition: Completed, Required: true}}},
		{Name: "web", Spec: web, DependsOn: []Dependency{{Service: "app", Condition: Started, Required: true}}},
	}}
	if err := Check(s); err != nil {
		t.Fatal(err)
	}
	return Qualify(s, "shop")
}

// before reports whether a comes before b in the calls.
func before(calls []string, a, b string) bool {
	ia, ib := -1, -1
	for i, c := range calls {
		if c == a && ia < 0 {
			ia = i
		}
		if c == b && ib < 0 {
			ib = i
		}
	}
	return ia >= 0 && ib >= 0 && ia < ib
}

func TestDeployFollowsDependsOn(t *testing.T) {
	f := newFake()
	f.exitCode["shop_migrate"] = 0
	st := shop(t)
	p, err := MakePlan(st, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	var progress []string
	o := f.opts()
	o.Progress = func(s string) { progress = append(progress, s) }
	// db is created first; migrate only once db's task is healthy, which
	// takes three polls (pending → starting → running → healthy).
	var dbHealthyAt, migrateCreatedAt int
	o.Sleep = func(ctx context.Context, d time.Duration) error {
		err := f.sleep(ctx, d)
		if dbHealthyAt == 0 && len(f.tasks["shop_db"]) > 0 && f.tasks["shop_db"][0].Status.Health == api.HealthHealthy {
			dbHealthyAt = len(f.calls)
		}
		return err
	}
	if err := Deploy(context.Background(), f, st, p, o); err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(progress, "\n"))
	}
	for i, c := range f.calls {
		if c == "create shop_migrate" {
			migrateCreatedAt = i + 1
		}
	}
	if dbHealthyAt == 0 || migrateCreatedAt <= dbHealthyAt {
		t.Errorf("migrate created at call %d, db healthy at %d: %v", migrateCreatedAt, dbHealthyAt, f.calls)
	}
	for _, pair := range [][2]string{{"create shop_db", "create shop_migrate"}, {"create shop_migrate", "create shop_app"}, {"create shop_app", "create shop_web"}} {
		if !before(f.calls, pair[0], pair[1]) {
			t.Errorf("%s not before %s: %v", pair[0], pair[1], f.calls)
		}
	}
	// app waits for migrate to complete, not merely start.
	if got := f.tasks["shop_migrate"][0].Status.State; got != api.TaskComplete {
		t.Errorf("migrate %s", got)
	}
	if !strings.Contains(strings.Join(progress, "\n"), "shop_app waits for shop_migrate (service_completed_successfully)") {
		t.Errorf("progress does not say what waits for what:\n%s", strings.Join(progress, "\n"))
	}
}

func TestDeployReapplySendsNothing(t *testing.T) {
	f := newFake()
	f.exitCode["shop_migrate"] = 0
	st := shop(t)
	p, _ := MakePlan(st, nil, false)
	if err := Deploy(context.Background(), f, st, p, f.opts()); err != nil {
		t.Fatal(err)
	}
	var current []api.Service
	for _, s := range f.services {
		current = append(current, *s)
	}
	p2, err := MakePlan(st, current, true)
	if err != nil {
		t.Fatal(err)
	}
	if p2.Changed() {
		t.Fatalf("re-apply plan changes something:\n%s", p2)
	}
	f.calls = nil
	if err := Deploy(context.Background(), f, st, p2, f.opts()); err != nil {
		t.Fatal(err)
	}
	for _, c := range f.calls {
		if c != "tick" {
			t.Errorf("re-apply sent %q", c)
		}
	}
	for _, s := range f.services {
		if s.SpecVersion != 1 {
			t.Errorf("%s at spec version %d", s.Spec.Name, s.SpecVersion)
		}
	}
}

func TestDeployUpdatesOnlyWhatChanged(t *testing.T) {
	f := newFake()
	f.exitCode["shop_migrate"] = 0
	st := shop(t)
	p, _ := MakePlan(st, nil, false)
	if err := Deploy(context.Background(), f, st, p, f.opts()); err != nil {
		t.Fatal(err)
	}
	st.Services[3].Spec.Task.Container.Image = "nginx:2" // web
	st.Services[0].Spec.Replicas = 5                     // app: scaled, not rolled
	var current []api.Service
	for _, s := range f.services {
		current = append(current, *s)
	}
	p2, _ := MakePlan(st, current, false)
	f.calls = nil
	if err := Deploy(context.Background(), f, st, p2, f.opts()); err != nil {
		t.Fatal(err)
	}
	var sent []string
	for _, c := range f.calls {
		if c != "tick" {
			sent = append(sent, c)
		}
	}
	if strings.Join(sent, ", ") != "scale shop_app=5, update shop_web" {
		t.Errorf("sent %v", sent)
	}
	if f.services["shop_app"].SpecVersion != 1 || f.services["shop_web"].SpecVersion != 2 {
		t.Errorf("versions app=%d web=%d", f.services["shop_app"].SpecVersion, f.services["shop_web"].SpecVersion)
	}
}

func TestDeployNotConverged(t *testing.T) {
	f := newFake()
	f.unhealthy["shop_db"] = true
	st := shop(t)
	p, _ := MakePlan(st, nil, false)
	err := Deploy(context.Background(), f, st, p, f.opts())
	var nc *NotConverged
	if !errors.As(err, &nc) || nc.Service != "shop_db" || !strings.Contains(nc.Reason, "unhealthy") || !errors.Is(err, ErrNotConverged) {
		t.Fatalf("err = %v", err)
	}
	for _, c := range f.calls {
		if c == "create shop_migrate" || c == "create shop_app" {
			t.Errorf("%s although db never became healthy", c)
		}
	}
}

func TestDeployFailedDependency(t *testing.T) {
	f := newFake()
	f.exitCode["shop_migrate"] = 2
	st := shop(t)
	p, _ := MakePlan(st, nil, false)
	err := Deploy(context.Background(), f, st, p, f.opts())
	var nc *NotConverged
	if !errors.As(err, &nc) || nc.Service != "shop_migrate" || !strings.Contains(nc.Reason, "status 2") {
		t.Fatalf("err = %v", err)
	}
	if f.now.Sub(time.Unix(0, 0)) >= time.Minute {
		t.Errorf("waited for the timeout although the dependency had failed")
	}
}

func TestDeployPrunesFirst(t *testing.T) {
	f := newFake()
	f.services["shop_old"] = &api.Service{ID: "x", Spec: api.ServiceSpec{Name: "shop_old", Labels: map[string]string{LabelStack: "shop"}}}
	st := Qualify(Stack{Services: []Service{{Name: "web", Spec: spec("web", "nginx")}}}, "shop")
	p, _ := MakePlan(st, []api.Service{*f.services["shop_old"]}, true)
	o := f.opts()
	o.Detach = true
	if err := Deploy(context.Background(), f, st, p, o); err != nil {
		t.Fatal(err)
	}
	if len(f.calls) < 2 || f.calls[0] != "remove shop_old" || f.calls[1] != "create shop_web" {
		t.Errorf("calls %v", f.calls)
	}
}

func TestStatus(t *testing.T) {
	check := &api.HealthCheck{Kind: api.HealthExec}
	svc := func(replicas uint64, health *api.HealthCheck, upd *api.UpdateStatus) api.Service {
		s := api.Service{ID: "s", SpecVersion: 2, Update: upd}
		s.Spec.Name, s.Spec.Replicas, s.Spec.Task.Health = "shop_db", replicas, health
		return s
	}
	task := func(version uint64, state api.TaskState, health api.HealthState) api.Task {
		return api.Task{ServiceID: "s", SpecVersion: version, DesiredState: api.TaskRunning, Status: api.TaskStatus{State: state, Health: health}}
	}
	for _, tc := range []struct {
		name            string
		svc             api.Service
		tasks           []api.Task
		cond            Condition
		met             bool
		failed, problem string
	}{
		{"started", svc(2, nil, nil), []api.Task{task(2, api.TaskRunning, ""), task(2, api.TaskRunning, "")}, Started, true, "", ""},
		{"old version does not count", svc(2, nil, nil), []api.Task{task(2, api.TaskRunning, ""), task(1, api.TaskRunning, "")}, Started, false, "", ""},
		{"healthy needs every task healthy", svc(2, check, nil), []api.Task{task(2, api.TaskRunning, api.HealthHealthy), task(2, api.TaskRunning, api.HealthStarting)}, Healthy, false, "", ""},
		{"unhealthy is the problem", svc(1, check, nil), []api.Task{task(2, api.TaskRunning, api.HealthUnhealthy)}, Healthy, false, "", "task 0 unhealthy"},
		{"healthy", svc(1, check, nil), []api.Task{task(2, api.TaskRunning, api.HealthHealthy)}, Healthy, true, "", ""},
		{"updating is not met", svc(1, nil, &api.UpdateStatus{State: api.UpdateUpdating}), []api.Task{task(2, api.TaskRunning, "")}, Started, false, "", ""},
		{"paused update fails", svc(1, nil, &api.UpdateStatus{State: api.UpdatePaused, Message: "task failed"}), nil, Started, false, "update paused: task failed", ""},
		{"awaiting promote is as far as it goes", svc(3, nil, &api.UpdateStatus{State: api.UpdateAwaitingPromote}), []api.Task{task(2, api.TaskRunning, "")}, converged, true, "", ""},
		{"completed", svc(1, nil, nil), []api.Task{{ServiceID: "s", SpecVersion: 2, Status: api.TaskStatus{State: api.TaskComplete}}}, Completed, true, "", ""},
		{"completed with an error fails", svc(1, nil, nil), []api.Task{{ServiceID: "s", SpecVersion: 2, Status: api.TaskStatus{State: api.TaskComplete, ExitCode: 3}}}, Completed, false, "task exited with status 3", ""},
		{"pending says why", svc(1, nil, nil), []api.Task{{ServiceID: "s", SpecVersion: 2, DesiredState: api.TaskRunning, Status: api.TaskStatus{State: api.TaskPending, Message: "0/2 nodes: 2 insufficient memory"}}}, Started, false, "", "pending: 0/2 nodes: 2 insufficient memory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Status(tc.svc, tc.tasks, tc.cond)
			if s.Met != tc.met || s.Failed != tc.failed || s.Problem != tc.problem {
				t.Errorf("Status = %+v, want met %v failed %q problem %q", s, tc.met, tc.failed, tc.problem)
			}
		})
	}
}
