package nodenet

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/dataplane/dns"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current conversions")

// fixtures are the assignments in testdata/*.json; each has a .golden beside
// it with every configuration the node derives from it.
func fixtures(t *testing.T) map[string]*api.Assignments {
	t.Helper()
	paths, err := filepath.Glob("testdata/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 4 {
		t.Fatalf("found %d fixtures in testdata, want at least 4: the golden test would check little", len(paths))
	}
	out := map[string]*api.Assignments{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		a := &api.Assignments{}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(a); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out[strings.TrimSuffix(filepath.Base(p), ".json")] = a
	}
	return out
}

const testWGPort = 51820

func TestGolden(t *testing.T) {
	for name, a := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			got := render(t, a)
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from the conversion (go test -update rewrites it after review)\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
		})
	}
}

// render writes every configuration derived from a in a stable text form.
func render(t *testing.T, a *api.Assignments) string {
	t.Helper()
	var b strings.Builder
	gateway, err := Gateway(a.Network)
	if err != nil {
		t.Fatal(err)
	}

	m := MeshConfig(a, gateway, testWGPort)
	fmt.Fprintf(&b, "== mesh\nlisten-port %d\naddress %s\n", m.ListenPort, m.Address)
	for _, p := range m.Peers {
		fmt.Fprintf(&b, "peer %s endpoint %s allowed-ips %v\n", p.PublicKey, p.Endpoint, p.AllowedIPs)
	}

	dp := DataplaneConfig(a)
	if err := dp.Validate(); err != nil {
		t.Errorf("the dataplane would refuse the converted config: %v", err)
	}
	b.WriteString("== dataplane\n")
	for _, s := range dp.Services {
		fmt.Fprintf(&b, "service %s name %s vip %s\n", s.ID, s.Name, s.VIP)
		for _, p := range s.Ports {
			fmt.Fprintf(&b, "  port %s %d -> %d published %d\n", p.Proto, p.Port, p.TargetPort, p.Published)
		}
		for _, g := range s.Groups {
			fmt.Fprintf(&b, "  group %s weight %d\n", g.Version, g.Weight)
			for _, be := range g.Backends {
				fmt.Fprintf(&b, "    backend %s %s %s\n", be.ID, be.Addr, be.Health)
			}
		}
	}

	b.WriteString("== dns records\n")
	for _, r := range dnsRecords(DNSConfig(a), a.Network.Domain) {
		fmt.Fprintf(&b, "%s A %s\n", r.name, addrsString(r.addrs))
	}

	nc, err := CNIConf(a.Network, "warren0", "/var/lib/warren")
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.MarshalIndent(nc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "== cni\n%s\n", j)
	fmt.Fprintf(&b, "== resolv.conf\n%s", ResolvConf(gateway, a.Network.Domain))
	return b.String()
}

type record struct {
	name  string
	addrs []netip.Addr
}

// dnsRecords lists the names a node answers for each service of c: NAME and
// NAME.domain (the VIP, when the service has one), tasks.NAME and
// tasks.NAME.domain (the active tasks). TestDNSRecordsAnswered asks a real server for each, so the golden
// files cannot claim a record the server does not give.
func dnsRecords(c *dns.Config, domain string) []record {
	var names []string
	for n := range c.Services {
		names = append(names, n)
	}
	for n := range c.Tasks {
		if _, ok := c.Services[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var out []record
	for _, n := range names {
		tasks := slices.Clone(c.Tasks[n])
		slices.SortFunc(tasks, func(a, b netip.Addr) int { return a.Compare(b) })
		vip, hasVIP := c.Services[n]
		if hasVIP {
			out = append(out, record{n, []netip.Addr{vip}})
		}
		out = append(out, record{"tasks." + n, tasks})
		if domain == "" {
			continue
		}
		if hasVIP {
			out = append(out, record{n + "." + domain, []netip.Addr{vip}})
		}
		out = append(out, record{"tasks." + n + "." + domain, tasks})
	}
	return out
}

func addrsString(as []netip.Addr) string {
	if len(as) == 0 {
		return "(none)"
	}
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, " ")
}

// TestDNSRecordsAnswered serves each fixture's DNS config on loopback and
// asks for every record the golden file lists.
func TestDNSRecordsAnswered(t *testing.T) {
	asked := 0
	for name, a := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			srv, err := dns.New(dns.Options{ListenAddr: "127.0.0.1:0", Domain: a.Network.Domain, Upstreams: []string{"127.0.0.1:1"}})
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Set(DNSConfig(a)); err != nil {
				t.Fatalf("the DNS server refuses the converted config: %v", err)
			}
			if err := srv.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = srv.Close() })
			for _, r := range dnsRecords(DNSConfig(a), a.Network.Domain) {
				asked++
				c := &mdns.Client{Net: "udp", Timeout: 5 * time.Second}
				q := new(mdns.Msg)
				q.SetQuestion(mdns.Fqdn(r.name), mdns.TypeA)
				resp, _, err := c.Exchange(q, srv.Addr().String())
				if err != nil {
					t.Fatalf("query %s: %v", r.name, err)
				}
				if resp.Rcode != mdns.RcodeSuccess {
					t.Errorf("%s: rcode %s, want an answer", r.name, mdns.RcodeToString[resp.Rcode])
					continue
				}
				var got []netip.Addr
				for _, rr := range resp.Answer {
					if rec, ok := rr.(*mdns.A); ok {
						addr, _ := netip.AddrFromSlice(rec.A)
						got = append(got, addr.Unmap())
					}
				}
				slices.SortFunc(got, func(a, b netip.Addr) int { return a.Compare(b) })
				if addrsString(got) != addrsString(r.addrs) {
					t.Errorf("%s: server answers %s, golden says %s", r.name, addrsString(got), addrsString(r.addrs))
				}
			}
		})
	}
	if asked == 0 {
		t.Fatal("no fixture has a service: nothing was asked")
	}
}
