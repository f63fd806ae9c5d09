package dataplane

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func web(groups ...Group) Service {
	return Service{ID: "svc-web", Name: "web", VIP: netip.MustParseAddr("10.43.0.10"),
		Ports: []Port{{Proto: TCP, Port: 80, TargetPort: 8080, Published: 30080}}, Groups: groups}
}

func dns(groups ...Group) Service {
	return Service{ID: "svc-dns", Name: "dns", VIP: netip.MustParseAddr("10.43.0.53"),
		Ports: []Port{{Proto: UDP, Port: 53, TargetPort: 5353}, {Proto: TCP, Port: 53, TargetPort: 5353}}, Groups: groups}
}

// TestPlanGolden feeds a sequence of configs to Plan, applies each plan to
// simulated tables one operation at a time checking the kernel invariant in
// between, checks that planning the same config again yields nothing, and
// compares the operations with testdata/<name>.golden.
func TestPlanGolden(t *testing.T) {
	type step struct {
		name string
		cfg  Config
	}
	sequences := map[string][]step{
		"canary": {
			{"v1 only", Config{[]Service{web(Group{"v1", 100, []Backend{be("b1", Active), be("b2", Active)}})}}},
			{"add canary 90/10", Config{[]Service{web(Group{"v1", 90, []Backend{be("b1", Active), be("b2", Active)}}, Group{"v2", 10, []Backend{be("b3", Active)}})}}},
			{"canary unhealthy", Config{[]Service{web(Group{"v1", 90, []Backend{be("b1", Active), be("b2", Active)}}, Group{"v2", 10, []Backend{be("b3", Unhealthy)}})}}},
			{"promote", Config{[]Service{web(Group{"v1", 0, []Backend{be("b1", Terminating), be("b2", Active)}}, Group{"v2", 100, []Backend{be("b3", Active)}})}}},
			{"v1 gone", Config{[]Service{web(Group{"v2", 100, []Backend{be("b3", Active)}})}}},
		},
		"services": {
			{"two services", Config{[]Service{web(Group{"v1", 1, []Backend{be("b1", Active)}}), dns(Group{"v1", 1, []Backend{be("b5", Active), be("b6", Active)}})}}},
			{"no backends", Config{[]Service{web(Group{"v1", 1, []Backend{be("b1", Unhealthy)}}), dns(Group{"v1", 1, []Backend{be("b5", Active), be("b6", Active)}})}}},
			{"backend back", Config{[]Service{web(Group{"v1", 1, []Backend{be("b1", Active)}}), dns(Group{"v1", 1, []Backend{be("b5", Active), be("b6", Active)}})}}},
			{"unpublish and drop dns", Config{[]Service{func() Service {
				s := web(Group{"v1", 1, []Backend{be("b1", Active)}})
				s.Ports[0].Published = 0
				return s
			}()}}},
			{"empty", Config{}},
		},
	}
	for name, steps := range sequences {
		t.Run(name, func(t *testing.T) {
			tables := NewTables()
			var out strings.Builder
			for _, st := range steps {
				ops, err := Plan(tables, &st.cfg)
				if err != nil {
					t.Fatalf("%s: %v", st.name, err)
				}
				fmt.Fprintf(&out, "## %s\n", st.name)
				for _, o := range ops {
					fmt.Fprintln(&out, o)
					if err := tables.Apply(o); err != nil {
						t.Fatal(err)
					}
					if err := tables.Check(); err != nil {
						t.Fatalf("%s: after %v: %v", st.name, o, err)
					}
				}
				again, err := Plan(tables, &st.cfg)
				if err != nil {
					t.Fatal(err)
				}
				if len(again) != 0 {
					t.Fatalf("%s: second Set of the same config planned %v", st.name, again)
				}
			}
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(out.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if out.String() != string(want) {
				t.Errorf("ops differ from %s (run with -update and review the diff):\n%s", golden, out.String())
			}
		})
	}
}

// TestPlanRecoversPartialApply cuts a plan short after every prefix, as an
// agent crash would, and checks that re-planning from what was written
// reaches the same tables.
func TestPlanRecoversPartialApply(t *testing.T) {
	from := Config{[]Service{web(Group{"v1", 100, []Backend{be("b1", Active), be("b2", Active)}}), dns(Group{"v1", 1, []Backend{be("b5", Active)}})}}
	to := Config{[]Service{web(Group{"v1", 90, []Backend{be("b1", Active)}}, Group{"v2", 10, []Backend{be("b3", Active)}})}}
	base := NewTables()
	ops, _ := Plan(base, &from)
	if err := ApplyPlan(base, ops); err != nil {
		t.Fatal(err)
	}
	full := base.Clone()
	ops, _ = Plan(full, &to)
	ApplyPlan(full, ops)
	for cut := range len(ops) {
		tb := base.Clone()
		ApplyPlan(tb, ops[:cut])
		again, err := Plan(tb, &to)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range again {
			tb.Apply(o)
			if err := tb.Check(); err != nil {
				t.Fatalf("cut %d: after %v: %v", cut, o, err)
			}
		}
		if !sameShape(tb, full) {
			t.Fatalf("cut %d: tables differ:\n%s\nwant\n%s", cut, tb, full)
		}
		if len(tb.Slots) != len(full.Slots) || len(tb.Backends) != len(full.Backends) {
			t.Fatalf("cut %d: stale entries left: %d slots, %d backends", cut, len(tb.Slots), len(tb.Backends))
		}
	}
}

// sameShape compares tables ignoring revision numbers, which may differ
// after a crash.
func sameShape(a, b *Tables) bool {
	norm := func(t *Tables) string {
		var s []string
		for k, v := range t.Frontends {
			var ids []string
			for i := range v.Count {
				ids = append(ids, t.BackendNames[t.Slots[SlotKey{v.Service, v.Rev, i}]])
			}
			s = append(s, fmt.Sprint(k, t.ServiceNames[v.Service], v.TargetPort, ids))
		}
		slices.Sort(s)
		return fmt.Sprint(len(s), s)
	}
	return norm(a) == norm(b)
}

func TestValidate(t *testing.T) {
	bad := []Config{
		{[]Service{{ID: "", VIP: netip.MustParseAddr("10.43.0.1")}}},
		{[]Service{{ID: "a", VIP: netip.MustParseAddr("10.43.0.1")}, {ID: "a", VIP: netip.MustParseAddr("10.43.0.2")}}},
		{[]Service{{ID: "a", VIP: netip.MustParseAddr("fd00::1")}}},
		{[]Service{{ID: "a", VIP: netip.MustParseAddr("10.43.0.1"), Ports: []Port{{Proto: TCP, Port: 80, TargetPort: 80, Published: 8080}}},
			{ID: "b", VIP: netip.MustParseAddr("10.43.0.2"), Ports: []Port{{Proto: TCP, Port: 80, TargetPort: 80, Published: 8080}}}}},
		{[]Service{{ID: "a", VIP: netip.MustParseAddr("10.43.0.1"), Ports: []Port{{Proto: 1, Port: 80, TargetPort: 80}}}}},
	}
	for i, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("config %d: want error", i)
		}
	}
	a := Config{[]Service{web(Group{"v1", 1, []Backend{be("b1", Active)}})}}
	b := Config{[]Service{web(Group{"v1", 1, []Backend{be("b1", Active)}})}}
	if !a.Equal(&b) {
		t.Fatal("equal configs not Equal")
	}
	b.Services[0].Groups[0].Backends[0].Health = Unhealthy
	if a.Equal(&b) {
		t.Fatal("different configs Equal")
	}
}

// TestPlanNilIsEmpty: a nil Config is the empty table, the same plan as
// &Config{} (every implementation's Set(nil) relies on it).
func TestPlanNilIsEmpty(t *testing.T) {
	var nilCfg *Config
	if err := nilCfg.Validate(); err != nil {
		t.Fatalf("Validate(nil): %v", err)
	}
	tables := NewTables()
	ops, _ := Plan(tables, &Config{[]Service{web(Group{"v1", 1, []Backend{be("b1", Active)}})}})
	if err := ApplyPlan(tables, ops); err != nil {
		t.Fatal(err)
	}
	got, err := Plan(tables, nil)
	if err != nil {
		t.Fatalf("Plan(nil): %v", err)
	}
	want, _ := Plan(tables, &Config{})
	if len(got) == 0 || !slices.Equal(got, want) {
		t.Fatalf("Plan(nil) = %v, want the plan of the empty config %v", got, want)
	}
	if err := ApplyPlan(tables, got); err != nil {
		t.Fatal(err)
	}
	if len(tables.Frontends)+len(tables.Slots)+len(tables.Backends)+len(tables.ServiceNames)+len(tables.BackendNames) != 0 {
		t.Fatalf("tables after Plan(nil):\n%s", tables)
	}
}
