package nodedevice

import "testing"

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    Found
		want Start
	}{
		{"dns in the daemon: the device serves wireguard alone", Found{}, SpawnWireGuard},
		{"first start: one process for both", Found{DNSDevice: true}, SpawnBoth},
		{"a dns device of this binary (kernel wireguard before, or its wireguard deleted): it takes wireguard on", Found{DNSDevice: true, Running: true, ThisBinary: true}, AskDNSDevice},
		{"it serves this interface already (the socket is gone): asked again, it says so", Found{DNSDevice: true, Running: true, ThisBinary: true, Hosts: "wg0"}, AskDNSDevice},
		{"it serves another interface: left as it is", Found{DNSDevice: true, Running: true, ThisBinary: true, Hosts: "wg1"}, SpawnWireGuard},
		{"a dns device of another binary (upgrade) and no wireguard: the new process succeeds it", Found{DNSDevice: true, Running: true}, SpawnBoth},
		{"another binary's device serving another interface: succeeded all the same", Found{DNSDevice: true, Running: true, Hosts: "wg1"}, SpawnBoth},
	} {
		if got := Plan(tc.f, "wg0"); got != tc.want {
			t.Errorf("%s: Plan(%+v) = %s, want %s", tc.name, tc.f, got, tc.want)
		}
	}
}
