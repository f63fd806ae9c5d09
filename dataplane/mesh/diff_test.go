package mesh

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func testKey(t *testing.T, seed byte) string {
	t.Helper()
	var k wgtypes.Key
	for i := range k {
		k[i] = seed
	}
	return k.String()
}

func TestDiffGolden(t *testing.T) {
	kA, kB, kC := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	pfx := netip.MustParsePrefix
	ep := netip.MustParseAddrPort
	a := Peer{PublicKey: kA, Endpoint: ep("192.168.250.2:51820"), AllowedIPs: []netip.Prefix{pfx("10.42.2.0/24")}}
	b := Peer{PublicKey: kB, Endpoint: ep("192.168.250.3:51820"), AllowedIPs: []netip.Prefix{pfx("10.42.3.0/24")}}
	bMoved := b
	bMoved.Endpoint = ep("192.168.250.9:51821")
	bRekeyed := b
	bRekeyed.PublicKey = kC
	aMore := a
	aMore.AllowedIPs = []netip.Prefix{pfx("10.42.2.0/24"), pfx("10.42.20.0/24")}
	base := &Config{ListenPort: 51820, Address: pfx("10.42.1.1/32"), Peers: []Peer{a, b}}

	cases := []struct {
		name      string
		cur, want *Config
		golden    string
	}{
		{"from nothing", nil, base, fmt.Sprintf(
			"port 51820\naddress 10.42.1.1/32\npeer add %s 192.168.250.2:51820 [10.42.2.0/24]\npeer add %s 192.168.250.3:51820 [10.42.3.0/24]\nroute add 10.42.2.0/24\nroute add 10.42.3.0/24\n", kA, kB)},
		{"same config, reordered", base, &Config{ListenPort: 51820, Address: pfx("10.42.1.1/32"), Peers: []Peer{b, a}}, ""},
		{"endpoint moves", base, &Config{ListenPort: 51820, Address: pfx("10.42.1.1/32"), Peers: []Peer{a, bMoved}}, fmt.Sprintf(
			"peer update %s 192.168.250.9:51821 [10.42.3.0/24]\n", kB)},
		{"rekey keeps the route", base, &Config{ListenPort: 51820, Address: pfx("10.42.1.1/32"), Peers: []Peer{a, bRekeyed}}, fmt.Sprintf(
			"peer remove %s\npeer add %s 192.168.250.3:51820 [10.42.3.0/24]\n", kB, kC)},
		{"peer removed", base, &Config{ListenPort: 51820, Address: pfx("10.42.1.1/32"), Peers: []Peer{a}}, fmt.Sprintf(
			"peer remove %s\nroute del 10.42.3.0/24\n", kB)},
		{"allowed ips grow", base, &Config{ListenPort: 51820, Address: pfx("10.42.1.1/32"), Peers: []Peer{aMore, b}}, fmt.Sprintf(
			"peer update %s 192.168.250.2:51820 [10.42.2.0/24 10.42.20.0/24]\nroute add 10.42.20.0/24\n", kA)},
		{"port and address", base, &Config{ListenPort: 51821, Address: pfx("10.42.1.0/32"), Peers: []Peer{a, b}}, "port 51821\naddress 10.42.1.0/32\n"},
		{"to nothing", base, nil, fmt.Sprintf(
			"port 0\naddress invalid Prefix\npeer remove %s\npeer remove %s\nroute del 10.42.2.0/24\nroute del 10.42.3.0/24\n", kA, kB)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := Diff(tc.cur, tc.want)
			if got := p.String(); got != tc.golden {
				t.Fatalf("plan:\n%s\nwant:\n%s", got, tc.golden)
			}
			if p.Empty() != (tc.golden == "") {
				t.Fatalf("Empty() = %v", p.Empty())
			}
			if tc.cur != nil && tc.want != nil && tc.cur.Equal(tc.want) != (tc.golden == "") {
				t.Fatalf("Equal disagrees with Diff")
			}
		})
	}
}

func TestPlanUAPIAndWGConfig(t *testing.T) {
	kA, kB := testKey(t, 1), testKey(t, 2)
	p := Diff(&Config{Peers: []Peer{{PublicKey: kB}}}, &Config{ListenPort: 7, Peers: []Peer{{
		PublicKey: kA, Endpoint: netip.MustParseAddrPort("192.0.2.1:51820"),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.42.9.7/24")},
	}}})
	text, err := p.UAPI()
	if err != nil {
		t.Fatal(err)
	}
	// Removal of B (key bytes 0x02) comes before the addition of A (0x01).
	want := "listen_port=7\n" +
		"public_key=" + strings.Repeat("02", 32) + "\nremove=true\n" +
		"public_key=" + strings.Repeat("01", 32) + "\nendpoint=192.0.2.1:51820\npersistent_keepalive_interval=25\nreplace_allowed_ips=true\nallowed_ip=10.42.9.0/24\n"
	if text != want {
		t.Fatalf("uapi:\n%s\nwant:\n%s", text, want)
	}
	cfg, err := p.WGConfig()
	if err != nil {
		t.Fatal(err)
	}
	if *cfg.ListenPort != 7 || len(cfg.Peers) != 2 || !cfg.Peers[0].Remove || cfg.Peers[1].Remove ||
		!cfg.Peers[1].ReplaceAllowedIPs || cfg.Peers[1].AllowedIPs[0].String() != "10.42.9.0/24" || cfg.Peers[1].Endpoint.String() != "192.0.2.1:51820" {
		t.Fatalf("wgconfig = %+v", cfg)
	}
	bad := Plan{Peers: []PeerChange{{PeerAdd, Peer{PublicKey: "nope"}}}}
	if _, err := bad.UAPI(); err == nil {
		t.Fatal("bad key rendered")
	}
}

func TestChooseMode(t *testing.T) {
	unsupported := func() error { return fmt.Errorf("x: %w", ErrNotSupported) }
	broken := func() error { return errors.New("permission denied") }
	ok := func() error { return nil }
	cases := []struct {
		mode  string
		probe func() error
		want  string // "" = error
	}{
		{ModeAuto, ok, ModeKernel},
		{ModeAuto, unsupported, ModeUserspace},
		{ModeAuto, broken, ""},
		{ModeKernel, unsupported, ""},
		{ModeKernel, ok, ModeKernel},
		{ModeUserspace, broken, ModeUserspace},
		{"bogus", ok, ""},
	}
	for _, tc := range cases {
		got, err := chooseMode(tc.mode, tc.probe)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("chooseMode(%s) = %q, %v; want %q", tc.mode, got, err, tc.want)
		}
	}
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "wg.key")
	k1, err := loadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode().Perm(), err)
	}
	k2, err := loadOrCreateKey(path)
	if err != nil || k1 != k2 {
		t.Fatal("key not stable across loads")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadOrCreateKey(path); err == nil {
		t.Fatal("world-readable key accepted")
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := (Options{KeyFile: "k"}).withDefaults().validate(); err != nil {
		t.Fatal(err)
	}
	for _, o := range []Options{{}, {KeyFile: "k", Mode: "x"}, {KeyFile: "k", IfName: "way-too-long-name"}} {
		if err := o.withDefaults().validate(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
