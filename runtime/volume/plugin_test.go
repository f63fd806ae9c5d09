//go:build linux

package volume

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// writePlugin puts a shell script plugin into dir as warren-volume-<name>.
func writePlugin(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, PluginPrefix+name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// gone reports whether pid no longer runs (exited, or a zombie nobody reaped).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}

func TestPluginContract(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	dir := t.TempDir()
	fast := Timeouts{Capabilities: 300 * time.Millisecond, Create: 300 * time.Millisecond, Mount: 300 * time.Millisecond}
	req := Request{Name: "db", Opts: map[string]string{"host": "10.0.0.9"}, Target: "/mnt/x"}
	for _, tc := range []struct {
		name, body string
		op         string
		want       string // substring of the error; "" for success
	}{
		{"ok", `cat > "$0.req"; echo "$1 $WARREN_VOLUME_COMMAND" > "$0.argv"`, "mount", ""},
		{"empty-ok", `exit 0`, "create", ""},
		{"fails-json", `echo '{"error":"export /srv/db not found"}'; exit 3`, "mount", "volume plugin fails-json mount db: exit status 3: export /srv/db not found"},
		{"fails-stderr", `echo "permission denied (publickey)" >&2; exit 1`, "mount", "exit status 1: permission denied (publickey)"},
		{"fails-silent", `exit 7`, "create", "exit status 7: no message"},
		{"garbage", `echo 'mounted ok!!'`, "mount", `volume plugin garbage mount db: invalid response "mounted ok!!"`},
		{"error-with-zero", `echo '{"error":"half done"}'`, "mount", "exit status 0 with error: half done"},
		{"hangs", `sleep 1000 & echo $! > "$0.child"; wait`, "mount", "volume plugin hangs mount db: no answer within 300ms (killed)"},
		{"bad-scope", `echo '{"scope":"galaxy"}'`, "capabilities", `scope must be single-node or multi-node, not "galaxy"`},
		{"caps", `echo '{"version":"1","scope":"multi-node","access":["single-writer","multi-writer"]}'`, "capabilities", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writePlugin(t, dir, tc.name, tc.body)
			p := Plugin{Name: tc.name, Path: path, Timeouts: fast}
			var err error
			switch tc.op {
			case "mount":
				err = p.Mount(t.Context(), req)
			case "create":
				err = p.Create(t.Context(), req)
			case "capabilities":
				var c Capabilities
				c, err = p.Capabilities(t.Context())
				if err == nil && (c.Scope != api.ScopeMultiNode || len(c.Access) != 2) {
					t.Fatalf("capabilities = %+v", c)
				}
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			switch tc.name {
			case "ok":
				var got Request
				b, _ := os.ReadFile(path + ".req")
				if err := json.Unmarshal(b, &got); err != nil {
					t.Fatalf("request on stdin %q: %v", b, err)
				}
				if got.Version != Version || got.Name != "db" || got.Opts["host"] != "10.0.0.9" || got.Target != "/mnt/x" {
					t.Fatalf("request = %+v", got)
				}
				if argv, _ := os.ReadFile(path + ".argv"); strings.TrimSpace(string(argv)) != "mount mount" {
					t.Fatalf("argv[1] and WARREN_VOLUME_COMMAND = %q", argv)
				}
			case "hangs":
				b, err := os.ReadFile(path + ".child")
				if err != nil {
					t.Fatal(err)
				}
				pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
				// The kill is delivered before Run returns; give the kernel
				// a bounded moment to finish the child off.
				for i := 0; i < 100 && !gone(pid); i++ {
					time.Sleep(20 * time.Millisecond)
				}
				if !gone(pid) {
					t.Fatalf("the hung plugin's child %d outlived the timeout", pid)
				}
			}
		})
	}
}

func TestPluginCallerContextCancels(t *testing.T) {
	dir := t.TempDir()
	p := Plugin{Name: "slow", Path: writePlugin(t, dir, "slow", "sleep 1000")}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := p.Mount(ctx, Request{Name: "v"}); err == nil {
		t.Fatal("mount with a cancelled context succeeded")
	}
}
