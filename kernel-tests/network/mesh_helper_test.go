//go:build linux

package networktest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/dataplane/mesh"
)

const helperEnv = "WARREN_NETTEST_HELPER"

// meshHelper is a mesh node running inside a namespace (the test starts it
// with nsenter --net, so its TUN device and UDP socket live there). It prints
// its public key and mode, then applies one JSON Config per stdin line and
// answers "ok" or "err ...". EOF closes the mesh.
func meshHelper() int {
	m, err := mesh.New(mesh.Options{
		Mode:    os.Getenv("WARREN_MESH_MODE"),
		IfName:  os.Getenv("WARREN_MESH_IF"),
		KeyFile: os.Getenv("WARREN_MESH_KEY"),
	})
	if err != nil {
		fmt.Printf("err %v\n", err)
		return 1
	}
	defer m.Close()
	mode := "unknown"
	if mm, ok := m.(interface{ Mode() string }); ok {
		mode = mm.Mode()
	}
	fmt.Printf("%s %s\n", m.PublicKey(), mode)
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var c mesh.Config
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			fmt.Printf("err decode: %v\n", err)
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

// meshNode is the test's handle on a helper process.
type meshNode struct {
	t      *testing.T
	cmd    *exec.Cmd
	in     *json.Encoder
	stdin  interface{ Close() error }
	out    *bufio.Scanner
	key    string
	mode   string
	ifName string
}

func startMeshNode(t *testing.T, nsName, ifName, keyFile, mode string) *meshNode {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nsenter", "--net="+nsPath(nsName), "--", exe)
	cmd.Env = append(os.Environ(), helperEnv+"=mesh", "WARREN_MESH_IF="+ifName, "WARREN_MESH_KEY="+keyFile, "WARREN_MESH_MODE="+mode)
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &meshNode{t: t, cmd: cmd, in: json.NewEncoder(stdin), stdin: stdin, out: bufio.NewScanner(stdout), ifName: ifName}
	t.Cleanup(func() { n.stop() })
	line := n.readLine()
	f := strings.Fields(line)
	if len(f) != 2 || f[0] == "err" {
		t.Fatalf("mesh helper in %s: %q", nsName, line)
	}
	n.key, n.mode = f[0], f[1]
	return n
}

func (n *meshNode) readLine() string {
	n.t.Helper()
	done := make(chan string, 1)
	go func() {
		if n.out.Scan() {
			done <- n.out.Text()
		} else {
			done <- "err helper exited"
		}
	}()
	select {
	case l := <-done:
		return l
	case <-time.After(30 * time.Second):
		n.t.Fatal("mesh helper did not answer within 30s")
		return ""
	}
}

func (n *meshNode) set(c *mesh.Config) {
	n.t.Helper()
	if err := n.in.Encode(c); err != nil {
		n.t.Fatal(err)
	}
	if l := n.readLine(); l != "ok" {
		n.t.Fatalf("Set: %s", l)
	}
}

// stop closes stdin (the helper closes its mesh) and waits; the process is
// killed if it does not exit promptly.
func (n *meshNode) stop() {
	if n.cmd.ProcessState != nil {
		return
	}
	_ = n.stdin.Close()
	done := make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = n.cmd.Process.Kill()
		<-done
	}
}
