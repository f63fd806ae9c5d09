package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/manager"
	"github.com/warrenhq/warren/dataplane/nodenet"
	"github.com/warrenhq/warren/runtime"
	rtc "github.com/warrenhq/warren/runtime/containerd"
)

const pidFile = "warren.pid"

func newClusterLeaveCmd(g *globals) *cobra.Command {
	var force, removeImages bool
	var o nodeOpts
	cmd := &cobra.Command{
		Use:   "leave [--force] [--remove-images]",
		Short: "Take this node out of the cluster: stop warren and its containers, delete its state",
		Long: `Stop this node's warren daemon and the containers it runs, remove everything it created on
this machine (network devices, routes, kernel programs and maps under /sys/fs/bpf/warren, its
cgroups in every hierarchy) and delete its data directory. Images stay in containerd unless
--remove-images is given, which also removes the node's containerd namespace. A manager
refuses unless --force is given: a cluster that loses its managers' quorum cannot be changed
any more (demote it first). The node stays in 'warren node ls' as down until removed there with 'warren node rm'.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			ident, err := manager.LoadIdentity(g.dataDir)
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("%s holds no node: nothing to leave", g.dataDir)
			}
			if err != nil {
				return err
			}
			if ident.Role == api.RoleManager && !force {
				return fmt.Errorf("this node is a manager: demote it first (`warren node demote %s`) or pass --force", shortID(ident.NodeID))
			}
			if err := stopDaemon(g.dataDir, 30*time.Second); err != nil {
				return err
			}
			ctx, cancel := ctxTimeout(2 * time.Minute)
			defer cancel()
			var removed, problems []string
			note := func(r []string, err error) {
				removed = append(removed, r...)
				if err != nil {
					problems = append(problems, err.Error())
				}
			}
			note(uninstallContainers(ctx, o, ident.NodeID, removeImages))
			// After the containers: no task uses its secret files any more.
			if err := runtime.UnmountSecretFS(secretsRoot(ident.NodeID)); err != nil {
				problems = append(problems, err.Error())
			} else {
				removed = append(removed, "secrets tmpfs "+secretsRoot(ident.NodeID))
			}
			note(rtc.RemoveCgroups(o.cgroupParent))
			note(nodenet.Uninstall(nodenet.Installed{NodeID: ident.NodeID, Network: ident.Network, Bridge: o.bridge, WGIface: o.wgIface, DataDir: g.dataDir}))
			if err := os.RemoveAll(g.dataDir); err != nil {
				problems = append(problems, err.Error())
			} else {
				removed = append(removed, "data dir "+g.dataDir)
			}
			for _, r := range removed {
				fmt.Fprintf(g.stdout, "removed %s\n", r)
			}
			if !removeImages {
				fmt.Fprintf(g.stdout, "kept the images in containerd namespace %s (pass --remove-images to remove them and the namespace)\n", o.containerdNS)
			}
			if len(problems) > 0 {
				return fmt.Errorf("left the cluster, but clean-up was incomplete: %s", strings.Join(problems, "; "))
			}
			fmt.Fprintf(g.stdout, "node %s left the cluster\n", shortID(ident.NodeID))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "leave even if this node is a manager")
	cmd.Flags().BoolVar(&removeImages, "remove-images", false, "also remove this node's images and its containerd namespace")
	cmd.Flags().StringVar(&o.containerdSock, "containerd", envOr("WARREN_CONTAINERD", "/run/containerd/containerd.sock"), "containerd socket")
	cmd.Flags().StringVar(&o.containerdNS, "containerd-namespace", envOr("WARREN_CONTAINERD_NAMESPACE", "warren"), "containerd namespace of this node")
	cmd.Flags().StringVar(&o.cgroupParent, "cgroup-parent", envOr("WARREN_CGROUP_PARENT", "warren"), "cgroup parent of this node's containers")
	cmd.Flags().StringVar(&o.bridge, "bridge", envOr("WARREN_BRIDGE", "warren0"), "bridge of this node's containers")
	cmd.Flags().StringVar(&o.wgIface, "wireguard-interface", envOr("WARREN_WIREGUARD_INTERFACE", "warren-wg"), "WireGuard interface of this node")
	return cmd
}

// stopDaemon sends SIGTERM to the daemon recorded in the data dir and waits.
func stopDaemon(dataDir string, wait time.Duration) error {
	b, err := os.ReadFile(filepath.Join(dataDir, pidFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("%s: not a pid", filepath.Join(dataDir, pidFile))
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return nil // not running any more
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("warren (pid %d) did not stop within %s", pid, wait)
}

// uninstallContainers removes the node's containers (and, when asked, its
// images and containerd namespace).
func uninstallContainers(ctx context.Context, o nodeOpts, nodeID string, images bool) ([]string, error) {
	ex, err := rtc.New(rtc.Options{Address: o.containerdSock, Namespace: o.containerdNS, CgroupParent: o.cgroupParent, NodeID: nodeID})
	if err != nil {
		return nil, fmt.Errorf("containerd: %w", err)
	}
	defer ex.Close()
	return ex.Uninstall(ctx, images)
}

// writePidFile records the daemon's pid for `cluster leave`.
func writePidFile(dataDir string) (func(), error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	p := filepath.Join(dataDir, pidFile)
	if err := os.WriteFile(p, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return nil, err
	}
	return func() { os.Remove(p) }, nil
}
