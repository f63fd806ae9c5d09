package cni

import (
	"encoding/json"
	"net"
	"testing"
)

// FuzzParseConf: the plugin's stdin is written by the container runtime
// from a conflist anyone with root may edit; any bytes decode to a validated
// config or to a CNI error, and a validated config stays valid when the
// agent renders it back into a conflist.
func FuzzParseConf(f *testing.F) {
	for _, s := range []string{
		`{"cniVersion":"1.1.0","name":"warren","type":"warren-cni","subnet":"10.42.3.0/24"}`,
		`{"cniVersion":"1.0.0","name":"warren","type":"warren-cni","subnet":"10.42.3.0/24","podCIDR":"10.42.0.0/16","serviceCIDR":"10.43.0.0/16","mtu":1420,"bridge":"warren0","dataDir":"/var/lib/warren/cni"}`,
		`{"cniVersion":"1.1.0","name":"warren","type":"warren-cni","subnet":"10.42.3.0/24","prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.42.3.2/24"}]}}`,
		`{"cniVersion":"1.1.0","name":"warren","type":"warren-cni","subnet":"10.42.3.0/24","cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]}`,
		`{"subnet":"10.42.3.0/31"}`,
		`{"subnet":"fd00::/64","podCIDR":"fd00::/48"}`,
		`{"subnet":"10.42.3.0/24","serviceCIDR":"10.0.0.0/8"}`,
		`{"subnet":"10.42.3.0/24","mtu":-1}`,
		`{"subnet":"10.42.3.0/24","bridge":"a-very-long-bridge-name"}`,
		`{"subnet":5}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, stdin []byte) {
		c, err := parseConf(stdin)
		if err != nil {
			return
		}
		if !c.subnet.Addr().Is4() || !c.podCIDR.Contains(c.subnet.Addr()) {
			t.Fatalf("accepted subnet %s outside podCIDR %s", c.subnet, c.podCIDR)
		}
		list, err := confList(c.NetConf)
		if err != nil {
			t.Fatalf("a config parseConf accepted does not render: %v", err)
		}
		var out struct {
			Plugins []json.RawMessage `json:"plugins"`
		}
		if err := json.Unmarshal(list, &out); err != nil || len(out.Plugins) == 0 {
			t.Fatalf("rendered conflist has no plugins (%v): %s", err, list)
		}
		if _, err := parseConf(out.Plugins[0]); err != nil {
			t.Fatalf("rendered plugin config does not parse back: %v\n%s", err, out.Plugins[0])
		}
	})
}

// FuzzHostVethName: CNI_CONTAINERID and CNI_IFNAME come from the runtime;
// whatever they are, the host end's name is a valid, unique-per-attachment
// interface name.
func FuzzHostVethName(f *testing.F) {
	f.Add("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "eth0")
	f.Add("", "")
	f.Add("c\x00d", "e")
	f.Add("c", "\x00de")
	f.Fuzz(func(t *testing.T, id, ifName string) {
		n := hostVethName(id, ifName)
		if len(n) == 0 || len(n) > 15 {
			t.Fatalf("host veth name %q has %d bytes, want 1..15", n, len(n))
		}
		for _, r := range n {
			if r == '/' || r == ':' || r <= ' ' || r > '~' {
				t.Fatalf("host veth name %q has character %q", n, r)
			}
		}
		if _, err := net.ParseMAC(n); err == nil {
			t.Fatalf("host veth name %q reads as a MAC address", n)
		}
	})
}
