package nodenet

import (
	"fmt"
	"net/netip"
	"reflect"
	"testing"

	"github.com/warrenhq/warren/cni"
	"github.com/warrenhq/warren/controlplane/api"
)

func TestTaskVeths(t *testing.T) {
	got := TaskVeths(map[string]api.TaskStatus{
		"running":      {State: api.TaskRunning, ContainerID: "c1"},
		"no-container": {State: api.TaskRunning},
		"starting":     {State: api.TaskStarting, ContainerID: "c3"},
		"stopped":      {State: api.TaskComplete, ContainerID: "c4"},
	})
	want := map[string]string{"running": cni.HostVethName("c1", "eth0")}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("TaskVeths = %v, want %v", got, want)
	}
}

func TestDataplaneOptions(t *testing.T) {
	base := SinkOptions{
		NodeID: "n1", Addr: "192.168.50.1", WGIface: "wg-n1", Dataplane: "auto", Cgroup: "/sys/fs/cgroup/warren",
		Network: api.ClusterNetwork{Subnet: "10.42.1.0/24"}, RoutingMesh: true,
	}
	gw := netip.MustParseAddr("10.42.1.1")
	for _, tc := range []struct {
		name     string
		mesh     bool
		uplink   string
		wantPort string // NodeportInterface: empty means no routing mesh
	}{
		{"routing mesh on the uplink", true, "eth0", "eth0"},
		{"loopback is no uplink", true, "lo", ""},
		{"no interface holds the address", true, "", ""},
		{"routing mesh turned off", false, "eth0", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			o.RoutingMesh = tc.mesh
			got := dataplaneOptions(o, tc.uplink, gw)
			if got.NodeportInterface != tc.wantPort {
				t.Fatalf("NodeportInterface = %q, want %q", got.NodeportInterface, tc.wantPort)
			}
			if got.PinDir != "/sys/fs/bpf/warren/n1" || got.Mode != "auto" || got.CgroupPath != o.Cgroup || got.ProxyInterface != "warren-vip" {
				t.Errorf("options = %+v", got)
			}
			if tc.wantPort == "" {
				if got.MeshInterface != "" || got.NodeAddrs != nil {
					t.Errorf("routing mesh off but mesh fields set: %+v", got)
				}
				return
			}
			if got.MeshInterface != "wg-n1" || got.MeshAddr != gw || got.NodeSubnet != netip.MustParsePrefix("10.42.1.0/24") ||
				len(got.NodeAddrs) != 1 || got.NodeAddrs[0] != netip.MustParseAddr("192.168.50.1") {
				t.Errorf("routing mesh options = %+v", got)
			}
		})
	}
}

func TestGatewayNeedsSubnet(t *testing.T) {
	if _, err := Gateway(api.ClusterNetwork{}); err == nil {
		t.Fatal("a node without a subnet got a gateway")
	}
	if _, err := CNIConf(api.ClusterNetwork{Subnet: "10.42.1.0"}, "b", "/d"); err == nil {
		t.Fatal("a subnet without a prefix length made a CNI config")
	}
	gw, err := Gateway(api.ClusterNetwork{Subnet: "10.42.7.0/24"})
	if err != nil || gw != netip.MustParseAddr("10.42.7.1") {
		t.Fatalf("Gateway = %v, %v; want 10.42.7.1", gw, err)
	}
}

func TestCapacity(t *testing.T) {
	for _, tc := range []struct {
		name    string
		meminfo string
		want    api.Resources
	}{
		{"meminfo", "MemFree:  100 kB\nMemTotal:       16318480 kB\nSwapTotal: 0 kB\n", api.Resources{NanoCPUs: 4e9, MemoryBytes: 16318480 << 10}},
		{"unreadable", "", api.Resources{NanoCPUs: 4e9}},
	} {
		if got := capacity(4, tc.meminfo); got != tc.want {
			t.Errorf("%s: capacity = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestDNSConfigStackAliases(t *testing.T) {
	a := &api.Assignments{Services: []api.ServiceEndpoints{
		{Name: "shop_db", VIP: "10.43.0.1", Scope: "shop", Aliases: []string{"db"},
			Groups: []api.VersionGroup{{Backends: []api.Backend{{Addr: "10.42.0.5", Health: api.BackendUnhealthy}}}}},
		{Name: "shop_app", VIP: "10.43.0.2", Scope: "shop", Aliases: []string{"app"},
			Groups: []api.VersionGroup{{Backends: []api.Backend{{Addr: "10.42.0.6", Health: api.BackendActive}}}}},
		{Name: "web", VIP: "10.43.0.3", Groups: []api.VersionGroup{{Backends: []api.Backend{{Addr: "10.42.0.7", Health: api.BackendActive}}}}},
	}}
	c := DNSConfig(a)
	if got := c.Aliases["shop"]; !reflect.DeepEqual(got, map[string]string{"db": "shop_db", "app": "shop_app"}) {
		t.Errorf("aliases %v", got)
	}
	// A starting task (not yet a healthy backend) already resolves its
	// stack's names: nginx looks its upstreams up as it starts.
	want := map[netip.Addr]string{netip.MustParseAddr("10.42.0.5"): "shop", netip.MustParseAddr("10.42.0.6"): "shop"}
	if !reflect.DeepEqual(c.Scopes, want) {
		t.Errorf("scopes %v", c.Scopes)
	}
}
