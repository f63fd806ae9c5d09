package stack

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
)

func desired(specs ...api.ServiceSpec) Stack {
	var s Stack
	for _, sp := range specs {
		s.Services = append(s.Services, Service{Name: sp.Name, Spec: sp})
	}
	return Qualify(s, "shop")
}

func spec(name, image string) api.ServiceSpec {
	s := DefaultSpec()
	s.Name = name
	s.Task.Container.Image = image
	s.Ports = []api.PortConfig{{TargetPort: 80}} // protocol left to the server's default
	return s
}

// stored is what the API server keeps for a spec: its defaults applied,
// and a JSON round trip (nil and empty collections are not told apart).
func stored(t *testing.T, s api.ServiceSpec) api.Service {
	t.Helper()
	s = normalize(s)
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out api.ServiceSpec
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return api.Service{ID: "id-" + s.Name, Spec: out, SpecVersion: 1}
}

func actions(p Plan) string {
	var out []string
	for _, s := range p.Steps {
		out = append(out, string(s.Action)+" "+s.Name)
	}
	return strings.Join(out, ", ")
}

func TestMakePlan(t *testing.T) {
	webSpec := spec("web", "nginx:1.27")
	webSpec.Ports = append(webSpec.Ports, api.PortConfig{TargetPort: 80, PublishedPort: 8080})
	d := desired(spec("db", "postgres:16"), webSpec)
	db, web := d.Services[0].Spec, d.Services[1].Spec
	webV2 := web
	webV2.Task.Container = web.Task.Container
	webV2.Task.Container.Image = "nginx:1.28"
	webV2.Replicas = 3
	old := spec("old", "x")
	old.Name = "shop_old"
	old.Labels = map[string]string{LabelStack: "shop", LabelService: "old"}
	forced := web
	forced.Labels = copyLabels(web.Labels)
	forced.Labels[forceLabel] = "123"
	foreign := spec("other_web", "x")

	for _, tc := range []struct {
		name    string
		current []api.Service
		prune   bool
		want    string
		changes []Change
		orphans []string
		wantErr string
	}{
		{name: "empty cluster", want: "create shop_db, create shop_web"},
		{name: "re-apply changes nothing", current: []api.Service{stored(t, db), stored(t, web)}, want: "unchanged shop_db, unchanged shop_web"},
		{name: "a changed field is an update with its diff", current: []api.Service{stored(t, db), stored(t, webV2)}, want: "unchanged shop_db, update shop_web",
			changes: []Change{{Field: "replicas", Old: "3", New: "1"}, {Field: "task.container.image", Old: `"nginx:1.28"`, New: `"nginx:1.27"`}}},
		{name: "force-update label is not a change", current: []api.Service{stored(t, db), stored(t, forced)}, want: "unchanged shop_db, unchanged shop_web"},
		{name: "without prune a removed service is an orphan", current: []api.Service{stored(t, db), stored(t, web), stored(t, old)}, want: "unchanged shop_db, unchanged shop_web", orphans: []string{"shop_old"}},
		{name: "prune deletes it", prune: true, current: []api.Service{stored(t, db), stored(t, web), stored(t, old)}, want: "unchanged shop_db, unchanged shop_web, delete shop_old"},
		{name: "services of other stacks are not touched", prune: true, current: []api.Service{stored(t, foreign)}, want: "create shop_db, create shop_web"},
		{name: "a port published outside the stack is refused before anything changes", current: []api.Service{func() api.Service {
			s := stored(t, foreign)
			s.Spec.Ports = []api.PortConfig{{Protocol: api.TCP, TargetPort: 80, PublishedPort: 8080}}
			return s
		}()}, wantErr: "services.web.ports[1]: port 8080/tcp is already published by service other_web"},
		{name: "a mode change needs a new service", current: []api.Service{func() api.Service {
			s := stored(t, web)
			s.Spec.Mode, s.Spec.Replicas = api.ModeGlobal, 0
			return s
		}()}, wantErr: "service shop_web: mode cannot change from global to replicated in place"},
		{name: "a same-named service outside the stack is a conflict", current: []api.Service{{Spec: api.ServiceSpec{Name: "shop_web"}}}, wantErr: "service shop_web exists and is not part of stack shop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := MakePlan(d, tc.current, tc.prune)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := actions(p); got != tc.want {
				t.Errorf("plan = %s, want %s", got, tc.want)
			}
			var changes []Change
			for _, s := range p.Steps {
				changes = append(changes, s.Changes...)
				if (s.Action == Create || s.Action == Update) != (s.Spec != nil) {
					t.Errorf("%s %s: spec %v", s.Action, s.Name, s.Spec)
				}
			}
			if !reflect.DeepEqual(changes, tc.changes) {
				t.Errorf("changes = %+v, want %+v", changes, tc.changes)
			}
			if !reflect.DeepEqual(p.Orphans, tc.orphans) {
				t.Errorf("orphans = %v, want %v", p.Orphans, tc.orphans)
			}
			wantChanged := strings.Contains(tc.want, "create") || strings.Contains(tc.want, "update") || strings.Contains(tc.want, "delete")
			if p.Changed() != wantChanged {
				t.Errorf("Changed() = %v for %s", p.Changed(), tc.want)
			}
		})
	}
}

func TestDiffIgnoresServerDefaultsOnly(t *testing.T) {
	a := api.ServiceSpec{Name: "a", Ports: []api.PortConfig{{TargetPort: 80}}}
	b := normalize(a)
	if d := Diff(a, b); len(d) != 0 {
		t.Errorf("defaults seen as changes: %+v", d)
	}
	b.Task.Resources.Limits.NanoCPUs = 1_500_000_001
	d := Diff(a, b)
	if len(d) != 1 || d[0].Field != "task.resources.limits.nano_cpus" || d[0].New != "1500000001" {
		t.Errorf("%+v", d)
	}
	c := a
	c.Task.Container.Env = []string{}
	c.Labels = map[string]string{}
	if d := Diff(a, c); len(d) != 0 {
		t.Errorf("empty collections seen as changes: %+v", d)
	}
}

func TestPlanString(t *testing.T) {
	p := Plan{Steps: []Step{
		{Action: Create, Name: "shop_db"},
		{Action: Update, Name: "shop_web", Changes: []Change{{Field: "task.container.image", Old: `"a"`, New: `"b"`}, {Field: "labels.x", New: `"1"`}}},
	}, Orphans: []string{"shop_old"}}
	want := `create    shop_db
update    shop_web
            task.container.image: "a" → "b"
            labels.x: (none) → "1"
orphan    shop_old (no longer in the files; --prune deletes it)
`
	if got := p.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// A service pinned by the manager is unchanged when the same file is
// applied again; a new tag in the file is a change, and drops the pin.
func TestPlanKeepsImagePin(t *testing.T) {
	spec := api.ServiceSpec{Name: "web", Labels: map[string]string{LabelStack: "s"}, Task: api.TaskSpec{Container: api.ContainerSpec{Image: "reg:5000/demo:v1"}}}
	running := spec
	running.Task.Container.ImageDigest = "sha256:" + strings.Repeat("a", 64)
	running.Task.Container.ImagePlatforms = []api.Platform{{OS: "linux", Architecture: "amd64"}}
	cur := []api.Service{{ID: "1", Spec: running}}
	p, err := MakePlan(Stack{Name: "s", Services: []Service{{Name: "web", Spec: spec}}}, cur, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Steps) != 1 || p.Steps[0].Action != Unchanged {
		t.Fatalf("same file again: %+v, want unchanged", p.Steps)
	}
	moved := spec
	moved.Task.Container.Image = "reg:5000/demo:v2"
	p, err = MakePlan(Stack{Name: "s", Services: []Service{{Name: "web", Spec: moved}}}, cur, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Steps) != 1 || p.Steps[0].Action != Update || p.Steps[0].Spec.Task.Container.ImageDigest != "" {
		t.Fatalf("new tag: %+v, want an update without the old pin", p.Steps)
	}
}
