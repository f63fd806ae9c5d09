package stack

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

func svcWith(name string, deps ...string) Service {
	s := Service{Name: name, Spec: api.ServiceSpec{Name: name}}
	s.Spec.Task.Container.Image = "img"
	for _, d := range deps {
		s.DependsOn = append(s.DependsOn, Dependency{Service: d, Condition: Started, Required: true})
	}
	return s
}

func TestCheck(t *testing.T) {
	published := func(name string, port uint16) Service {
		s := svcWith(name)
		s.Spec.Ports = []api.PortConfig{{Protocol: api.TCP, TargetPort: 80}, {TargetPort: 80, PublishedPort: port}}
		return s
	}
	for _, tc := range []struct {
		name    string
		stack   Stack
		wantErr string
	}{
		{"fine", Stack{Services: []Service{svcWith("db"), svcWith("app", "db"), svcWith("web", "app", "db")}}, ""},
		{"defined twice", Stack{Services: []Service{svcWith("a"), svcWith("a")}}, "services.a: defined twice"},
		{"port twice", Stack{Services: []Service{published("a", 80), published("b", 80)}}, "services.b.ports[1]: port 80/tcp is already published by services.a.ports[1]"},
		{"udp and tcp share a number", Stack{Services: []Service{published("a", 53), func() Service {
			s := svcWith("b")
			s.Spec.Ports = []api.PortConfig{{Protocol: api.UDP, TargetPort: 53, PublishedPort: 53}}
			return s
		}()}}, ""},
		{"unknown dependency", Stack{Services: []Service{svcWith("a", "nope")}}, "services.a.depends_on.nope: no service \"nope\""},
		{"optional unknown dependency", Stack{Services: []Service{{Name: "a", Spec: api.ServiceSpec{Task: api.TaskSpec{Container: api.ContainerSpec{Image: "x"}}}, DependsOn: []Dependency{{Service: "nope"}}}}}, ""},
		{"cycle", Stack{Services: []Service{svcWith("a", "b"), svcWith("b", "c"), svcWith("c", "a")}}, "services.a.depends_on: dependency cycle: a -> b -> c -> a"},
		{"bad constraint", Stack{Services: []Service{func() Service {
			s := svcWith("a")
			s.Spec.Task.Container.Image = "x"
			s.Spec.Task.Placement.Constraints = []string{"node.labels.site=a"}
			return s
		}()}}, "services.a.task.placement.constraints[0]"},
		{"health timeout over interval", Stack{Services: []Service{func() Service {
			s := svcWith("a")
			s.Spec.Task.Container.Image = "x"
			s.Spec.Task.Health = &api.HealthCheck{Kind: api.HealthExec, Command: []string{"true"}, Interval: api.Duration(time.Second), Timeout: api.Duration(2 * time.Second)}
			return s
		}()}}, "services.a.task.health.timeout: 2s must not exceed the interval (1s)"},
		{"no image", Stack{Services: []Service{{Name: "a"}}}, "services.a.task.container.image: must be set"},
		{"self cycle", Stack{Services: []Service{svcWith("a", "a")}}, "dependency cycle: a -> a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.stack)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestOrder(t *testing.T) {
	s := Stack{Services: []Service{svcWith("web", "app"), svcWith("app", "db", "cache"), svcWith("db"), svcWith("cache"), svcWith("solo")}}
	got := Order(s)
	want := [][]string{{"cache", "db", "solo"}, {"app"}, {"web"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Order = %v, want %v", got, want)
	}
}

func TestQualify(t *testing.T) {
	s := Qualify(Stack{Services: []Service{{Name: "web", Spec: api.ServiceSpec{Labels: map[string]string{"a": "b"}}}}}, "shop")
	spec := s.Services[0].Spec
	if spec.Name != "shop_web" || spec.Labels[LabelStack] != "shop" || spec.Labels[LabelService] != "web" || spec.Labels["a"] != "b" {
		t.Errorf("%+v", spec)
	}
	for _, bad := range []string{"", "Shop", "a_b", "-a", strings.Repeat("a", 64)} {
		if ValidStackName(bad) == nil {
			t.Errorf("stack name %q accepted", bad)
		}
	}
	if err := ValidStackName("shop-2"); err != nil {
		t.Error(err)
	}
}
