//go:build linux

package networktest

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/warrenhq/warren/cni"
	"github.com/warrenhq/warren/cni/ipam"
	"github.com/warrenhq/warren/kernel-tests/ktest"
	"github.com/warrenhq/warren/runtime/ociimage"
)

// TestCRISandboxGetsWarrenAddress runs containerd's CRI plugin with
// warren-cni as its only network and checks that a pod sandbox gets its
// address from the node subnet, and gives it back when removed.
func TestCRISandboxGetsWarrenAddress(t *testing.T) {
	ktest.Root(t)
	ktest.Binary(t, "ctr")
	goBin := ktest.Binary(t, "go")
	node := newNetns(t, "cri")

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin, confDir, data := filepath.Join(dir, "bin"), filepath.Join(dir, "conf"), filepath.Join(dir, "ipam")
	if err := cni.InstallPlugin(bin, exe); err != nil {
		t.Fatal(err)
	}
	subnet := netip.MustParsePrefix("10.42.9.0/24")
	bridge := shortTag("wcr")
	// containerd 1.6's CRI vendors a libcni that reads results up to 1.0.0.
	if err := cni.WriteConfList(confDir, cni.NetConf{CNIVersion: "1.0.0", Bridge: bridge, Subnet: subnet.String(), ServiceCIDR: "10.43.0.0/16", DataDir: data}); err != nil {
		t.Fatal(err)
	}

	// containerd's CRI always runs the loopback plugin first; build the
	// reference one from the containernetworking/plugins module we require.
	lb := exec.Command(goBin, "build", "-o", filepath.Join(bin, "loopback"), "github.com/containernetworking/plugins/plugins/main/loopback")
	if out, err := lb.CombinedOutput(); err != nil {
		t.Fatalf("build loopback plugin: %v\n%s", err, out)
	}

	// The sandbox image cannot be pulled here: build a static pause binary
	// and pack it as a one-layer OCI archive.
	pauseBin := filepath.Join(dir, "pause")
	build := exec.Command(goBin, "build", "-o", pauseBin, "./testdata/pause")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build pause: %v\n%s", err, out)
	}
	pause, err := os.ReadFile(pauseBin)
	if err != nil {
		t.Fatal(err)
	}
	const pauseRef = "warren/pause:v1"
	var archive bytes.Buffer
	if err := ociimage.PackBinary(&archive, pauseRef, pause, ociimage.ImageConfig{}); err != nil {
		t.Fatal(err)
	}
	archivePath := filepath.Join(dir, "pause.tar")
	if err := os.WriteFile(archivePath, archive.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	ctd := ktest.StartContainerd(t, ktest.ContainerdOptions{
		CRI: true, CNIBinDir: bin, CNIConfDir: confDir, SandboxImage: ociimage.NormalizeRef(pauseRef), NetNS: node, Tag: "cri",
	})
	ktest.Run(t, "ctr", "--address", ctd.Socket, "-n", "k8s.io", "images", "import", archivePath)

	conn, err := grpc.NewClient("unix://"+ctd.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rs := runtimeapi.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// The CRI plugin loads the CNI config asynchronously; wait until it
	// reports the network ready.
	eventually(t, "CRI network ready", 20*time.Second, func() error {
		st, err := rs.Status(ctx, &runtimeapi.StatusRequest{})
		if err != nil {
			return err
		}
		for _, c := range st.GetStatus().GetConditions() {
			if c.Type == runtimeapi.NetworkReady && !c.Status {
				return errorString("network not ready: " + c.Reason + " " + c.Message)
			}
		}
		return nil
	})

	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "web-1", Uid: "uid-web-1", Namespace: "warren"},
		Hostname:     "web-1",
		LogDirectory: filepath.Join(dir, "logs"),
		Linux:        &runtimeapi.LinuxPodSandboxConfig{},
	}
	run, err := rs.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	id := run.PodSandboxId
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, _ = rs.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
		_, _ = rs.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
	})
	st, err := rs.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		t.Fatal(err)
	}
	ip, err := netip.ParseAddr(st.GetStatus().GetNetwork().GetIp())
	if err != nil || !subnet.Contains(ip) || ip == ipam.Gateway(subnet) {
		t.Fatalf("sandbox address %q (%v), want one from %s", st.GetStatus().GetNetwork().GetIp(), err, subnet)
	}
	store, err := ipam.Open(data, subnet)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok, _ := store.Lookup(id, "eth0"); !ok || got != ip {
		t.Fatalf("ipam lease for sandbox %s = %s %v, want %s", id, got, ok, ip)
	}
	// The sandbox's network namespace holds eth0 with that address.
	if out := inNS(t, node, "ip", "-o", "link", "show", "master", bridge); !strings.Contains(out, "wrn") {
		t.Fatalf("no sandbox veth on bridge %s: %s", bridge, out)
	}
	if _, err := rs.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if _, ok, _ := store.Lookup(id, "eth0"); ok {
		t.Fatal("stopping the sandbox did not free its address (CNI DEL)")
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }
