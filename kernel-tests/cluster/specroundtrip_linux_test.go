//go:build linux

package clustertest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/warrenhq/warren/kernel-tests/ktest"
)

// TestSpecRoundTrip creates a service with every container field set on
// the command line and reads the OCI spec back from containerd: the path is
// CLI → API → raft → assignments → agent → containerd, and no field may be
// lost on the way (the failure of earlier orchestrators).
func TestSpecRoundTrip(t *testing.T) {
	ktest.Binary(t, "ctr")
	c := newCluster(t, 1)
	h := c.hosts[0]
	c.init(h)
	h.mustCLI("image", "load", "-i", c.image)
	data := filepath.Join(c.dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	h.mustCLI("service", "create", "full", "--image", demoRef, "--replicas", "1",
		"--env", "GREETING=hello world", "--env", "PORT=8081", "--workdir", "/tmp", "--user", "1000:1000",
		"--hostname", "full-host", "--container-label", "team=edge",
		"--mount", "type=bind,source="+data+",target=/data,readonly", "--mount", "type=tmpfs,target=/scratch,tmpfs-size=16M",
		"--read-only", "--limit-cpu", "0.5", "--limit-memory", "64M", "--limit-pids", "64",
		"--stop-signal", "SIGINT", "--stop-grace-period", "7s", "--timeout", "2m")
	task := c.waitRunning(h, "full", 1, time.Minute, nil)[0]

	out, err := exec.Command("ctr", "--address", h.ctd.Socket, "-n", h.ctdNS, "containers", "info", task.Status.ContainerID).Output()
	if err != nil {
		t.Fatalf("ctr containers info: %v", err)
	}
	var info struct {
		Labels map[string]string `json:"Labels"`
		Spec   specs.Spec        `json:"Spec"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("decode container info: %v\n%s", err, out)
	}
	s := info.Spec
	check := func(what string, ok bool, got any) {
		t.Helper()
		if !ok {
			t.Errorf("%s did not reach containerd: got %v", what, got)
		}
	}
	check("--env GREETING", slices.Contains(s.Process.Env, "GREETING=hello world"), s.Process.Env)
	check("--env PORT", slices.Contains(s.Process.Env, "PORT=8081"), s.Process.Env)
	check("--workdir", s.Process.Cwd == "/tmp", s.Process.Cwd)
	check("--user", s.Process.User.UID == 1000 && s.Process.User.GID == 1000, s.Process.User)
	check("--hostname", s.Hostname == "full-host", s.Hostname)
	check("--read-only", s.Root != nil && s.Root.Readonly, s.Root)
	check("--container-label", info.Labels["team"] == "edge", info.Labels)
	check("--stop-signal", info.Labels["warren.stop.signal"] == "SIGINT", info.Labels)
	check("--stop-grace-period", info.Labels["warren.stop.grace"] == "7s", info.Labels)
	var bind, tmpfs bool
	for _, m := range s.Mounts {
		if m.Destination == "/data" && m.Source == data && slices.Contains(m.Options, "ro") {
			bind = true
		}
		if m.Destination == "/scratch" && m.Type == "tmpfs" && slices.ContainsFunc(m.Options, func(o string) bool { return o == "size=16777216" || o == "size=16m" || o == "size=16M" }) {
			tmpfs = true
		}
	}
	check("--mount bind,readonly", bind, s.Mounts)
	check("--mount tmpfs,tmpfs-size", tmpfs, s.Mounts)
	r := s.Linux.Resources
	check("--limit-memory", r != nil && r.Memory != nil && r.Memory.Limit != nil && *r.Memory.Limit == 64<<20, r.Memory)
	check("--limit-cpu", r != nil && r.CPU != nil && r.CPU.Quota != nil && r.CPU.Period != nil && *r.CPU.Quota*2 == int64(*r.CPU.Period), r.CPU)
	check("--limit-pids", r != nil && r.Pids != nil && r.Pids.Limit != nil && *r.Pids.Limit == 64, r.Pids)

	// And the process really runs with them.
	env, err := os.ReadFile(filepath.Join("/proc", itoa(task.Status.PID), "environ"))
	if err != nil {
		t.Fatal(err)
	}
	check("environment of the running process", slices.Contains(splitNUL(env), "GREETING=hello world"), splitNUL(env))
}

func itoa(n int) string { return strconv.Itoa(n) }

func splitNUL(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			out = append(out, string(b[start:i]))
			start = i + 1
		}
	}
	return out
}
