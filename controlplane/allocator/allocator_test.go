package allocator

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
)

func cluster(pod, svc string) api.Cluster {
	return api.Cluster{Network: api.ClusterNetworkSpec{PodCIDR: pod, ServiceCIDR: svc}}
}

func TestAllocateSubnet(t *testing.T) {
	cases := []struct {
		name    string
		pod     string
		have    map[string]string
		node    string
		want    string
		wantErr string
	}{
		{name: "first", pod: "10.42.0.0/16", node: "n1", want: "10.42.0.0/24"},
		{name: "lowest free", pod: "10.42.0.0/16", have: map[string]string{"a": "10.42.0.0/24", "b": "10.42.2.0/24"}, node: "n1", want: "10.42.1.0/24"},
		{name: "idempotent", pod: "10.42.0.0/16", have: map[string]string{"n1": "10.42.7.0/24"}, node: "n1", want: "10.42.7.0/24"},
		{name: "unmasked range", pod: "10.42.9.9/23", node: "n1", want: "10.42.8.0/24"},
		{name: "exhausted", pod: "10.42.0.0/23", have: map[string]string{"a": "10.42.0.0/24", "b": "10.42.1.0/24"}, node: "n1",
			wantErr: "pod range 10.42.0.0/23 exhausted: all 2 /24 subnets are allocated"},
		{name: "too small", pod: "10.42.0.0/25", node: "n1", wantErr: "smaller than one /24"},
		{name: "garbage", pod: "10.42.0.0", node: "n1", wantErr: `pod range "10.42.0.0"`},
		{name: "ipv6", pod: "fd00::/64", node: "n1", wantErr: "only IPv4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := cluster(tc.pod, "10.43.0.0/16")
			c.Subnets = tc.have
			before := fmt.Sprint(tc.have)
			got, s, err := AllocateSubnet(c, tc.node)
			if fmt.Sprint(tc.have) != before {
				t.Fatalf("input map mutated: %v", tc.have)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || s != tc.want || got.Subnets[tc.node] != tc.want {
				t.Fatalf("got %q (%v), map %v; want %q", s, err, got.Subnets, tc.want)
			}
		})
	}
}

func TestAllocateVIP(t *testing.T) {
	cases := []struct {
		name    string
		svc     string
		have    map[string]string
		want    string
		wantErr string
	}{
		{name: "skips network and gateway", svc: "10.43.0.0/16", want: "10.43.0.2"},
		{name: "lowest free", svc: "10.43.0.0/16", have: map[string]string{"a": "10.43.0.2", "b": "10.43.0.4"}, want: "10.43.0.3"},
		{name: "crosses an octet", svc: "10.43.0.0/16", have: func() map[string]string {
			m := map[string]string{}
			for i := 2; i < 256; i++ {
				m[fmt.Sprint(i)] = fmt.Sprintf("10.43.0.%d", i)
			}
			return m
		}(), want: "10.43.1.0"},
		{name: "last usable", svc: "10.43.0.0/30", want: "10.43.0.2"},
		{name: "exhausted skips broadcast", svc: "10.43.0.0/30", have: map[string]string{"a": "10.43.0.2"},
			wantErr: "service range 10.43.0.0/30 exhausted: all 1 virtual IPs are allocated"},
		{name: "too small", svc: "10.43.0.0/31", wantErr: "too small"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := cluster("10.42.0.0/16", tc.svc)
			c.VIPs = tc.have
			got, v, err := AllocateVIP(c, "s")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || v != tc.want || got.VIPs["s"] != tc.want {
				t.Fatalf("got %q (%v); want %q", v, err, tc.want)
			}
			if _, ok := tc.have["s"]; ok {
				t.Fatal("input map mutated")
			}
		})
	}
}

func TestReconcileReleasesAndReuses(t *testing.T) {
	c := cluster("10.42.0.0/16", "10.43.0.0/16")
	c.Subnets = map[string]string{"gone": "10.42.0.0/24", "n2": "10.42.1.0/24"}
	c.VIPs = map[string]string{"old": "10.43.0.2"}
	nodes := []api.Node{{ID: "n3"}, {ID: "n2"}, {ID: "n1"}}
	svcs := []api.Service{{ID: "web"}, {ID: "db"}}
	got, changed, err := Reconcile(c, nodes, svcs)
	if err != nil || !changed {
		t.Fatalf("changed=%v err=%v", changed, err)
	}
	wantSubnets := map[string]string{"n1": "10.42.0.0/24", "n2": "10.42.1.0/24", "n3": "10.42.2.0/24"}
	wantVIPs := map[string]string{"db": "10.43.0.2", "web": "10.43.0.3"}
	if !reflect.DeepEqual(got.Subnets, wantSubnets) || !reflect.DeepEqual(got.VIPs, wantVIPs) {
		t.Fatalf("subnets %v vips %v", got.Subnets, got.VIPs)
	}
	if c.Subnets["gone"] == "" || c.VIPs["old"] == "" {
		t.Fatal("input cluster mutated")
	}
	again, changed, err := Reconcile(got, nodes, svcs)
	if err != nil || changed || !reflect.DeepEqual(again, got) {
		t.Fatalf("second pass changed=%v err=%v", changed, err)
	}
}

func TestReconcileExhaustedKeepsProgress(t *testing.T) {
	c := cluster("10.42.0.0/23", "10.43.0.0/16")
	got, changed, err := Reconcile(c, []api.Node{{ID: "a"}, {ID: "b"}, {ID: "c"}}, nil)
	if err == nil || !strings.Contains(err.Error(), "10.42.0.0/23 exhausted") {
		t.Fatalf("err = %v", err)
	}
	if !changed || len(got.Subnets) != 2 || got.Subnets["c"] != "" {
		t.Fatalf("changed=%v subnets=%v", changed, got.Subnets)
	}
}
