package cni

import (
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

func TestParseConf(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		code    uint // 0: valid
		bridge  string
		subnet  string
		version string
	}{
		{"defaults", `{"cniVersion":"1.0.0","name":"n","type":"warren-cni","subnet":"10.42.3.0/24"}`, 0, "warren0", "10.42.3.0/24", "1.0.0"},
		{"host bits masked", `{"type":"warren-cni","subnet":"10.42.3.7/24","bridge":"br-x"}`, 0, "br-x", "10.42.3.0/24", DefaultVersion},
		{"not json", `{`, types.ErrDecodingFailure, "", "", ""},
		{"no subnet", `{"type":"warren-cni"}`, types.ErrInvalidNetworkConfig, "", "", ""},
		{"outside pod cidr", `{"subnet":"10.99.0.0/24"}`, types.ErrInvalidNetworkConfig, "", "", ""},
		{"svc overlaps pods", `{"subnet":"10.42.1.0/24","serviceCIDR":"10.42.0.0/16"}`, types.ErrInvalidNetworkConfig, "", "", ""},
		{"bad mtu", `{"subnet":"10.42.1.0/24","mtu":70000}`, types.ErrInvalidNetworkConfig, "", "", ""},
		{"long bridge", `{"subnet":"10.42.1.0/24","bridge":"averyverylongbridge"}`, types.ErrInvalidNetworkConfig, "", "", ""},
		{"ipv6", `{"subnet":"fd00::/64","podCIDR":"fd00::/48"}`, types.ErrInvalidNetworkConfig, "", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConf([]byte(tc.in))
			if tc.code != 0 {
				var te *types.Error
				if !errors.As(err, &te) || te.Code != tc.code {
					t.Fatalf("err = %v, want CNI error code %d", err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Bridge != tc.bridge || c.subnet.String() != tc.subnet || c.CNIVersion != tc.version {
				t.Fatalf("got bridge %s subnet %s version %s", c.Bridge, c.subnet, c.CNIVersion)
			}
		})
	}
}

func TestConfListRoundTrip(t *testing.T) {
	in := NetConf{Subnet: "10.42.3.0/24", ServiceCIDR: "10.43.0.0/16", DataDir: "/tmp/x"}
	in.DNS.Nameservers = []string{"10.42.3.1"}
	b, err := confList(in)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		CNIVersion string            `json:"cniVersion"`
		Name       string            `json:"name"`
		Plugins    []json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatal(err)
	}
	if list.Name != NetworkName || list.CNIVersion != DefaultVersion || len(list.Plugins) != 1 {
		t.Fatalf("conflist header = %+v", list)
	}
	c, err := parseConf(list.Plugins[0])
	if err != nil {
		t.Fatal(err)
	}
	if c.Type != PluginType || c.svcCIDR.String() != "10.43.0.0/16" || c.DNS.Nameservers[0] != "10.42.3.1" || c.DataDir != "/tmp/x" {
		t.Fatalf("plugin entry = %+v", c.NetConf)
	}
	if _, err := confList(NetConf{}); err == nil || !strings.Contains(err.Error(), "subnet") {
		t.Fatalf("confList without subnet: err = %v", err)
	}
}

func TestHostVethName(t *testing.T) {
	a := hostVethName("c1", "eth0")
	if a != hostVethName("c1", "eth0") || a == hostVethName("c2", "eth0") || a == hostVethName("c1", "eth1") {
		t.Fatal("host veth name not a function of (container, ifname)")
	}
	if len(a) > 15 || !strings.HasPrefix(a, defaultIfPrefix) {
		t.Fatalf("host veth name %q", a)
	}
}

func TestBridgeMAC(t *testing.T) {
	a := BridgeMAC("warren0", netip.MustParsePrefix("10.42.3.0/24"))
	if len(a) != 6 || a[0]&0x01 != 0 || a[0]&0x02 == 0 {
		t.Fatalf("bridge MAC %s: want 6 bytes, unicast, locally administered", a)
	}
	if b := BridgeMAC("warren0", netip.MustParsePrefix("10.42.3.7/24")); b.String() != a.String() {
		t.Errorf("same subnet written differently gave %s and %s", a, b)
	}
	for _, other := range []net.HardwareAddr{
		BridgeMAC("warren0", netip.MustParsePrefix("10.42.4.0/24")),
		BridgeMAC("warren1", netip.MustParsePrefix("10.42.3.0/24")),
	} {
		if other.String() == a.String() {
			t.Errorf("another node or bridge got the same MAC %s", a)
		}
	}
}
