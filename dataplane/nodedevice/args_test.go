package nodedevice

import (
	"reflect"
	"strings"
	"testing"
)

func TestArgsRoundTrip(t *testing.T) {
	dnsPart := &DNSArgs{Dir: "/var/lib/warren/dns", Listen: "10.42.3.1:53", Domain: "warren.local"}
	for _, a := range []Args{
		{DNS: dnsPart},
		{WireGuard: "warren-wg", MTU: 1420},
		{DNS: dnsPart, WireGuard: "warren-wg", MTU: 1420},
	} {
		argv := a.Argv()
		if !IsInvocation(argv) {
			t.Errorf("%q is not recognised as a device invocation", argv)
		}
		got, err := ParseArgs(argv)
		if err != nil {
			t.Errorf("ParseArgs(%q): %v", argv, err)
			continue
		}
		if !reflect.DeepEqual(got, a) {
			t.Errorf("ParseArgs(%q) = %+v, want %+v", argv, got, a)
		}
	}
}

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want Args
		err  string
	}{
		// What a daemon of the previous release starts, its binary
		// replaced in place under it.
		{args: []string{"__dns-device", "/d/dns", "10.42.0.1:53", "warren.local"}, want: Args{DNS: &DNSArgs{Dir: "/d/dns", Listen: "10.42.0.1:53", Domain: "warren.local"}}},
		{args: []string{"__wireguard-device", "wg0", "1420"}, want: Args{WireGuard: "wg0", MTU: 1420}},
		{args: []string{"__wireguard-device", "wg0", "big"}, err: "mtu"},
		{args: []string{"__dns-device", "/d/dns"}, err: "usage"},
		{args: []string{"__node-device"}, err: "serves nothing"},
		{args: []string{"__node-device", "-dns-dir", "/d/dns"}, err: "needs -dns-listen"},
		{args: []string{"__node-device", "-dns-listen", "10.42.0.1:53", "-dns-domain", "x"}, err: "need -dns-dir"},
		{args: []string{"__node-device", "-wireguard", "wg0"}, err: "positive -mtu"},
		{args: []string{"__node-device", "-wireguard", "wg0", "-mtu", "1420", "extra"}, err: "unexpected argument"},
		{args: []string{"__node-device", "-bogus"}, err: "bogus"},
		{args: []string{"service", "ls"}, err: "not a device invocation"},
		{args: nil, err: "no arguments"},
	} {
		got, err := ParseArgs(tc.args)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseArgs(%q) = %+v, %v; want an error with %q", tc.args, got, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseArgs(%q) = %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
	for _, args := range [][]string{nil, {}, {"daemon"}, {"node-device"}} {
		if IsInvocation(args) {
			t.Errorf("IsInvocation(%q) = true", args)
		}
	}
}
