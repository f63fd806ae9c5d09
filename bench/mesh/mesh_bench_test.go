//go:build linux

package meshbench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/dataplane/mesh"
	"github.com/warrenhq/warren/kernel-tests/ktest"
)

const helperEnv = "WARREN_MESHBENCH_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helper())
	}
	os.Exit(m.Run())
}

// helper runs a mesh node inside the namespace nsenter put it in: it prints
// its public key, applies one JSON Config from stdin, prints "ok" and keeps
// the device up until stdin closes.
func helper() int {
	m, err := mesh.New(mesh.Options{IfName: os.Getenv("WARREN_MESH_IF"), KeyFile: os.Getenv("WARREN_MESH_KEY")})
	if err != nil {
		fmt.Printf("err %v\n", err)
		return 1
	}
	defer m.Close()
	mode := "?"
	if mm, ok := m.(interface{ Mode() string }); ok {
		mode = mm.Mode()
	}
	fmt.Println(m.PublicKey(), mode)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var c mesh.Config
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			fmt.Printf("err %v\n", err)
			continue
		}
		if err := m.Set(&c); err != nil {
			fmt.Printf("err %v\n", err)
			continue
		}
		fmt.Println("ok")
	}
	return 0
}

type node struct {
	ns   string
	cmd  *exec.Cmd
	in   *json.Encoder
	out  *bufio.Scanner
	key  string
	mode string
}

func startNode(b *testing.B, nsName, ifName, keyFile string) *node {
	exe, _ := os.Executable()
	cmd := exec.Command("nsenter", "--net=/run/netns/"+nsName, "--", exe)
	cmd.Env = append(os.Environ(), helperEnv+"=1", "WARREN_MESH_IF="+ifName, "WARREN_MESH_KEY="+keyFile)
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	n := &node{ns: nsName, cmd: cmd, in: json.NewEncoder(stdin), out: bufio.NewScanner(stdout)}
	b.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	if !n.out.Scan() {
		b.Fatal("mesh helper exited")
	}
	f := strings.Fields(n.out.Text())
	if len(f) != 2 || f[0] == "err" {
		b.Fatalf("mesh helper: %s", n.out.Text())
	}
	n.key, n.mode = f[0], f[1]
	return n
}

func (n *node) set(b *testing.B, c *mesh.Config) {
	if err := n.in.Encode(c); err != nil {
		b.Fatal(err)
	}
	if !n.out.Scan() || n.out.Text() != "ok" {
		b.Fatalf("Set: %s", n.out.Text())
	}
}

func run(b *testing.B, args ...string) string {
	b.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		b.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// iperf runs one TCP iperf3 test from ns a to addr in ns b and returns the
// received rate in bit/s. Each attempt starts a one-off server; attempts are
// retried (bounded) while the server is not yet listening.
func iperf(b *testing.B, nsA, nsB, addr string, secs int) float64 {
	b.Helper()
	type result struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	attempt := func() (result, []byte, error) {
		srv := exec.Command("nsenter", "--net=/run/netns/"+nsB, "--", "iperf3", "-s", "-1", "-B", addr, "-p", "5201")
		if err := srv.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
		var (
			out []byte
			err error
		)
		for i := 0; i < 50; i++ {
			out, err = exec.Command("nsenter", "--net=/run/netns/"+nsA, "--", "iperf3", "-c", addr, "-p", "5201",
				"-t", strconv.Itoa(secs), "-O", "1", "-J").Output()
			var res result
			if json.Unmarshal(out, &res) == nil && strings.Contains(res.Error, "connect") {
				time.Sleep(100 * time.Millisecond) // server not listening yet
				continue
			}
			if err != nil {
				return res, out, err
			}
			return res, out, json.Unmarshal(out, &res)
		}
		return result{}, out, err
	}
	for try := 0; try < 3; try++ {
		res, out, err := attempt()
		if err == nil && res.Error == "" && res.End.SumReceived.BitsPerSecond > 0 {
			return res.End.SumReceived.BitsPerSecond
		}
		b.Logf("iperf3 to %s: attempt %d: %v %q; %d bytes of output", addr, try, err, res.Error, len(out))
	}
	b.Fatalf("iperf3 to %s failed 3 times", addr)
	return 0
}

func BenchmarkMeshIperf(b *testing.B) {
	ktest.Root(b)
	ktest.Binary(b, "iperf3")
	ktest.Binary(b, "nsenter")
	ktest.Binary(b, "tc")
	secs := 10
	if os.Getenv("WARREN_BENCH_SMOKE") != "" {
		secs = 3
	}
	tag := strconv.Itoa(os.Getpid() % 100000)
	nsA, nsB := "wbm-a-"+tag, "wbm-b-"+tag
	for _, n := range []string{nsA, nsB} {
		run(b, "ip", "netns", "add", n)
		b.Cleanup(func() { ktest.RunQuiet("ip", "netns", "del", n) })
		run(b, "ip", "-n", n, "link", "set", "lo", "up")
	}
	va, vb := "wbva"+tag, "wbvb"+tag
	run(b, "ip", "-n", nsA, "link", "add", va, "type", "veth", "peer", "name", vb, "netns", nsB)
	run(b, "ip", "-n", nsA, "addr", "add", "192.168.251.1/24", "dev", va)
	run(b, "ip", "-n", nsB, "addr", "add", "192.168.251.2/24", "dev", vb)
	run(b, "ip", "-n", nsA, "link", "set", va, "up")
	run(b, "ip", "-n", nsB, "link", "set", vb, "up")

	dir := b.TempDir()
	a := startNode(b, nsA, "wbwa"+tag, filepath.Join(dir, "a.key"))
	c := startNode(b, nsB, "wbwb"+tag, filepath.Join(dir, "b.key"))
	pfx := netip.MustParsePrefix
	a.set(b, &mesh.Config{ListenPort: 51820, Address: pfx("10.42.1.1/32"), Peers: []mesh.Peer{
		{PublicKey: c.key, Endpoint: netip.MustParseAddrPort("192.168.251.2:51820"), AllowedIPs: []netip.Prefix{pfx("10.42.2.0/24")}}}})
	c.set(b, &mesh.Config{ListenPort: 51820, Address: pfx("10.42.2.1/32"), Peers: []mesh.Peer{
		{PublicKey: a.key, Endpoint: netip.MustParseAddrPort("192.168.251.1:51820"), AllowedIPs: []netip.Prefix{pfx("10.42.1.0/24")}}}})

	measure := func(b *testing.B) {
		var under, over float64
		for i := 0; i < b.N; i++ {
			under += iperf(b, nsA, nsB, "192.168.251.2", secs)
			over += iperf(b, nsA, nsB, "10.42.2.1", secs)
		}
		under, over = under/float64(b.N), over/float64(b.N)
		b.ReportMetric(under/1e9, "underlay-Gbit/s")
		b.ReportMetric(over/1e9, "overlay-Gbit/s")
		b.ReportMetric(over/under, "overlay/underlay")
		b.Logf("mode=%s underlay %.3f Gbit/s, overlay %.3f Gbit/s, ratio %.3f", a.mode, under/1e9, over/1e9, over/under)
	}
	b.Run("unshaped", measure)
	for _, x := range [][2]string{{nsA, va}, {nsB, vb}} {
		run(b, "nsenter", "--net=/run/netns/"+x[0], "--", "tc", "qdisc", "add", "dev", x[1], "root", "tbf", "rate", "1gbit", "burst", "512kb", "latency", "50ms")
	}
	b.Run("tbf-1gbit", measure)
}
