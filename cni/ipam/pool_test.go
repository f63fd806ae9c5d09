package ipam

import (
	"errors"
	"net/netip"
	"testing"
)

func TestPoolReservedAndOrder(t *testing.T) {
	p, err := NewPool(netip.MustParsePrefix("10.42.3.0/29"))
	if err != nil {
		t.Fatal(err)
	}
	// .0 network, .1 gateway, .7 broadcast: five assignable addresses.
	want := []string{"10.42.3.2", "10.42.3.3", "10.42.3.4", "10.42.3.5", "10.42.3.6"}
	for i, w := range want {
		a, err := p.Allocate(Owner{ContainerID: string(rune('a' + i)), IfName: "eth0"})
		if err != nil {
			t.Fatalf("allocate %d: %v", i, err)
		}
		if a.String() != w {
			t.Fatalf("allocate %d = %s, want %s", i, a, w)
		}
	}
	if _, err := p.Allocate(Owner{ContainerID: "z", IfName: "eth0"}); !errors.Is(err, ErrExhausted) {
		t.Fatalf("allocate on full pool: err = %v, want ErrExhausted", err)
	}
}

func TestPoolTable(t *testing.T) {
	type step struct {
		op    string // "add", "del", "delc"
		owner Owner
		want  string // address, "" for none, "exhausted"
	}
	o := func(c, i string) Owner { return Owner{ContainerID: c, IfName: i} }
	cases := []struct {
		name   string
		subnet string
		steps  []step
	}{
		{"idempotent add", "10.42.0.0/24", []step{
			{"add", o("c1", "eth0"), "10.42.0.2"},
			{"add", o("c1", "eth0"), "10.42.0.2"},
			{"add", o("c1", "eth1"), "10.42.0.3"},
		}},
		{"freed address is not reused at once", "10.42.0.0/24", []step{
			{"add", o("c1", "eth0"), "10.42.0.2"},
			{"del", o("c1", "eth0"), "10.42.0.2"},
			{"add", o("c2", "eth0"), "10.42.0.3"},
		}},
		{"del unknown owner", "10.42.0.0/24", []step{
			{"del", o("nope", "eth0"), ""},
		}},
		{"wraps around to freed addresses", "10.42.0.0/30", []step{
			// /30: .0 net, .1 gw, .3 bcast: only .2 assignable.
			{"add", o("c1", "eth0"), "10.42.0.2"},
			{"add", o("c2", "eth0"), "exhausted"},
			{"del", o("c1", "eth0"), "10.42.0.2"},
			{"add", o("c2", "eth0"), "10.42.0.2"},
		}},
		{"wrap skips leased", "10.42.0.0/29", []step{
			{"add", o("a", "eth0"), "10.42.0.2"},
			{"add", o("b", "eth0"), "10.42.0.3"},
			{"add", o("c", "eth0"), "10.42.0.4"},
			{"add", o("d", "eth0"), "10.42.0.5"},
			{"add", o("e", "eth0"), "10.42.0.6"},
			{"del", o("c", "eth0"), "10.42.0.4"},
			{"add", o("f", "eth0"), "10.42.0.4"},
		}},
		{"release whole container", "10.42.0.0/24", []step{
			{"add", o("c1", "eth0"), "10.42.0.2"},
			{"add", o("c1", "net1"), "10.42.0.3"},
			{"delc", o("c1", ""), "10.42.0.2,10.42.0.3"},
			{"add", o("c1", "eth0"), "10.42.0.4"},
		}},
		{"non-zero host bits are masked", "10.42.7.9/24", []step{
			{"add", o("c1", "eth0"), "10.42.7.2"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPool(netip.MustParsePrefix(tc.subnet))
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tc.steps {
				var got string
				switch s.op {
				case "add":
					a, err := p.Allocate(s.owner)
					switch {
					case errors.Is(err, ErrExhausted):
						got = "exhausted"
					case err != nil:
						t.Fatalf("step %d: %v", i, err)
					default:
						got = a.String()
					}
				case "del":
					if a, ok := p.Release(s.owner); ok {
						got = a.String()
					}
				case "delc":
					for j, a := range p.ReleaseContainer(s.owner.ContainerID) {
						if j > 0 {
							got += ","
						}
						got += a.String()
					}
				}
				if got != s.want {
					t.Fatalf("step %d %s %v = %q, want %q", i, s.op, s.owner, got, s.want)
				}
			}
		})
	}
}

func TestNewPoolRejects(t *testing.T) {
	for _, s := range []string{"10.42.0.0/31", "fd00::/64"} {
		if _, err := NewPool(netip.MustParsePrefix(s)); err == nil {
			t.Errorf("NewPool(%s) succeeded, want error", s)
		}
	}
	if _, err := (&Pool{Subnet: netip.MustParsePrefix("10.0.0.0/24"), Leases: map[netip.Addr]Owner{}}).Allocate(Owner{}); err == nil {
		t.Error("Allocate with empty container id succeeded")
	}
}

func TestBroadcastGateway(t *testing.T) {
	for _, tc := range []struct{ subnet, gw, bc string }{
		{"10.42.3.0/24", "10.42.3.1", "10.42.3.255"},
		{"10.42.0.0/16", "10.42.0.1", "10.42.255.255"},
		{"192.168.1.64/26", "192.168.1.65", "192.168.1.127"},
	} {
		p := netip.MustParsePrefix(tc.subnet)
		if g := Gateway(p).String(); g != tc.gw {
			t.Errorf("Gateway(%s) = %s, want %s", tc.subnet, g, tc.gw)
		}
		if b := Broadcast(p).String(); b != tc.bc {
			t.Errorf("Broadcast(%s) = %s, want %s", tc.subnet, b, tc.bc)
		}
	}
}

func TestPoolRetain(t *testing.T) {
	p, _ := NewPool(netip.MustParsePrefix("10.42.0.0/24"))
	for _, c := range []string{"a", "b", "c"} {
		if _, err := p.Allocate(Owner{c, "eth0"}); err != nil {
			t.Fatal(err)
		}
	}
	freed := p.Retain(map[Owner]bool{{"b", "eth0"}: true, {"zzz", "eth0"}: true})
	if len(freed) != 2 || freed[0].ContainerID != "a" || freed[1].ContainerID != "c" {
		t.Fatalf("freed %v", freed)
	}
	if _, ok := p.Lookup(Owner{"b", "eth0"}); !ok || len(p.Leases) != 1 {
		t.Fatalf("leases after retain: %v", p.Leases)
	}
}
