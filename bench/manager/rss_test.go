package manager

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func warrenBin(b *testing.B) string {
	if p := os.Getenv("WARREN_BIN"); p != "" {
		return p
	}
	out := filepath.Join(b.TempDir(), "warren")
	cmd := exec.Command("go", "build", "-o", out, "github.com/warrenhq/warren/cmd/warren")
	if o, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build warren: %v\n%s", err, o)
	}
	return out
}

func freePort(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// rssKiB reads VmRSS of pid.
func rssKiB(pid int) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.Atoi(strings.Fields(rest)[0])
		}
	}
	return 0, fmt.Errorf("no VmRSS for %d", pid)
}

// BenchmarkManagerRSS reports the manager's resident memory idle and with
// 100 services, and the time from starting `cluster init` until the API
// answers. The baseline in the same run is the idle figure itself: the
// ratio says what 100 services cost relative to an empty manager.
func BenchmarkManagerRSS(b *testing.B) {
	bin := warrenBin(b)
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		addr := freePort(b)
		metrics := freePort(b)
		start := time.Now()
		cmd := exec.Command(bin, "--data-dir", dir, "cluster", "init", "--manager-only",
			"--advertise-addr", addr, "--listen-addr", addr, "--metrics-addr", metrics)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		logf, _ := os.Create(filepath.Join(dir, "out.log"))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		stop := func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			_ = cmd.Wait()
		}
		cli := func(args ...string) error {
			out, err := exec.Command(bin, append([]string{"--data-dir", dir}, args...)...).CombinedOutput()
			if err != nil {
				return fmt.Errorf("warren %s: %v: %s", strings.Join(args, " "), err, out)
			}
			return nil
		}
		deadline := time.Now().Add(60 * time.Second)
		for cli("node", "ls") != nil {
			if time.Now().After(deadline) {
				stop()
				log, _ := os.ReadFile(filepath.Join(dir, "out.log"))
				b.Fatalf("manager did not answer within 60s:\n%s", log)
			}
			time.Sleep(50 * time.Millisecond)
		}
		initTime := time.Since(start)
		time.Sleep(2 * time.Second) // let start-up garbage be collected
		idle, err := rssKiB(cmd.Process.Pid)
		if err != nil {
			stop()
			b.Fatal(err)
		}
		n := 100
		if os.Getenv("WARREN_BENCH_SMOKE") != "" {
			n = 20
		}
		for s := 0; s < n; s++ {
			if err := cli("service", "create", "--detach", fmt.Sprintf("svc%d", s), "--image", "warren/demo:v1", "--replicas", "1", "--port", strconv.Itoa(20000+s)+":80"); err != nil {
				stop()
				b.Fatal(err)
			}
		}
		time.Sleep(2 * time.Second)
		loaded, err := rssKiB(cmd.Process.Pid)
		stop()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(idle)/1024, "idle-MiB")
		b.ReportMetric(float64(loaded)/1024, fmt.Sprintf("with-%d-services-MiB", n))
		b.ReportMetric(float64(loaded)/float64(idle), "loaded/idle")
		b.ReportMetric(initTime.Seconds()*1000, "init-to-api-ms")
	}
}
