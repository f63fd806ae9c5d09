//go:build linux

package runtimetest

import (
	"context"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/warrenhq/warren/kernel-tests/ktest"
)

// TestContainerdHelperCRI checks the shared helper's CRI mode, which other
// areas' tests use: the CRI plugin loads (with restrict_oom_score_adj, as
// root here lacks CAP_SYS_RESOURCE) and answers on the private socket, and
// everything is gone after cleanup.
func TestContainerdHelperCRI(t *testing.T) {
	ktest.Root(t)
	var dir string
	t.Run("start", func(t *testing.T) {
		bin, conf := t.TempDir(), t.TempDir()
		c := ktest.StartContainerd(t, ktest.ContainerdOptions{Tag: "cri", CRI: true, CNIBinDir: bin, CNIConfDir: conf})
		dir = c.Dir
		conn, err := grpc.NewClient("unix://"+c.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		v, err := cri.NewRuntimeServiceClient(conn).Version(ctx, &cri.VersionRequest{})
		if err != nil {
			t.Fatalf("CRI version: %v", err)
		}
		if v.RuntimeName != "containerd" {
			t.Fatalf("CRI runtime %q", v.RuntimeName)
		}
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("helper left %s behind: %v", dir, err)
	}
}
