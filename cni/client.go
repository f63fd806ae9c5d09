package cni

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// Client is how the node agent attaches tasks to the pod network: it runs
// the plugin chain in ConfDir through libcni, exactly as a CNI runtime would.
type Client struct {
	BinDir  string
	ConfDir string
	// CacheDir is libcni's result cache (default /var/lib/cni); CHECK and DEL
	// use the cached ADD result as prevResult.
	CacheDir string
	// IfName is the interface inside the container, eth0 by default.
	IfName string
}

// NewClient returns a client that finds plugins in binDir and the conflist
// written by WriteConfList in confDir.
func NewClient(binDir, confDir string) *Client {
	return &Client{BinDir: binDir, ConfDir: confDir, IfName: "eth0"}
}

func (c *Client) setup() (*libcni.CNIConfig, *libcni.NetworkConfigList, *libcni.RuntimeConf, error) {
	list, err := libcni.ConfListFromFile(filepath.Join(c.ConfDir, ConfListFile))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("load cni config: %w", err)
	}
	cfg := libcni.NewCNIConfigWithCacheDir([]string{c.BinDir}, c.CacheDir, nil)
	ifName := c.IfName
	if ifName == "" {
		ifName = "eth0"
	}
	return cfg, list, &libcni.RuntimeConf{IfName: ifName, CacheDir: c.CacheDir}, nil
}

// Add attaches the container whose network namespace is netnsPath and
// returns its address.
func (c *Client) Add(ctx context.Context, containerID, netnsPath string) (netip.Addr, error) {
	cfg, list, rt, err := c.setup()
	if err != nil {
		return netip.Addr{}, err
	}
	rt.ContainerID, rt.NetNS = containerID, netnsPath
	res, err := cfg.AddNetworkList(ctx, list, rt)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("cni add %s: %w", containerID, err)
	}
	r, err := current.NewResultFromResult(res)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("cni add %s: convert result: %w", containerID, err)
	}
	for _, ipc := range r.IPs {
		if a, ok := netip.AddrFromSlice(ipc.Address.IP.To4()); ok && ipc.Address.IP.To4() != nil {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("cni add %s: result has no IPv4 address", containerID)
}

// Check verifies the attachment against the cached ADD result.
func (c *Client) Check(ctx context.Context, containerID, netnsPath string) error {
	cfg, list, rt, err := c.setup()
	if err != nil {
		return err
	}
	rt.ContainerID, rt.NetNS = containerID, netnsPath
	if err := cfg.CheckNetworkList(ctx, list, rt); err != nil {
		return fmt.Errorf("cni check %s: %w", containerID, err)
	}
	return nil
}

// Del detaches the container and frees its address. It succeeds for
// containers that were never added or whose namespace is gone.
func (c *Client) Del(ctx context.Context, containerID, netnsPath string) error {
	cfg, list, rt, err := c.setup()
	if err != nil {
		return err
	}
	rt.ContainerID, rt.NetNS = containerID, netnsPath
	if err := cfg.DelNetworkList(ctx, list, rt); err != nil {
		return fmt.Errorf("cni del %s: %w", containerID, err)
	}
	return nil
}

// GC tells the plugin which containers still exist; it frees the addresses
// and host interfaces of every other attachment.
func (c *Client) GC(ctx context.Context, validContainerIDs []string) error {
	cfg, list, rt, err := c.setup()
	if err != nil {
		return err
	}
	args := &libcni.GCArgs{}
	for _, id := range validContainerIDs {
		args.ValidAttachments = append(args.ValidAttachments, types.GCAttachment{ContainerID: id, IfName: rt.IfName})
	}
	if err := cfg.GCNetworkList(ctx, list, args); err != nil {
		return fmt.Errorf("cni gc: %w", err)
	}
	return nil
}

// Status asks the plugin whether it can attach containers now.
func (c *Client) Status(ctx context.Context) error {
	cfg, list, _, err := c.setup()
	if err != nil {
		return err
	}
	if err := cfg.GetStatusNetworkList(ctx, list); err != nil {
		return fmt.Errorf("cni status: %w", err)
	}
	return nil
}

// WriteConfList writes conf, with defaults filled in, as the conflist in
// confDir. The file is replaced atomically so a runtime never reads half.
func WriteConfList(confDir string, conf NetConf) error {
	b, err := confList(conf)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return fmt.Errorf("write cni config: %w", err)
	}
	tmp, err := os.CreateTemp(confDir, ".warren-conflist-*")
	if err != nil {
		return fmt.Errorf("write cni config: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write cni config: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write cni config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write cni config: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(confDir, ConfListFile)); err != nil {
		return fmt.Errorf("write cni config: %w", err)
	}
	return nil
}

// InstallPlugin makes self (normally os.Executable()) available as
// binDir/warren-cni. It is a symlink: the binary dispatches on argv[0], and
// upgrading the warren binary upgrades the plugin with it.
func InstallPlugin(binDir, self string) error {
	abs, err := filepath.Abs(self)
	if err != nil {
		return fmt.Errorf("install plugin: %w", err)
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return fmt.Errorf("install plugin: %w", err)
	}
	dst := filepath.Join(binDir, PluginType)
	if cur, err := os.Readlink(dst); err == nil && cur == abs {
		return nil
	}
	tmp := filepath.Join(binDir, fmt.Sprintf(".%s-%d", PluginType, os.Getpid()))
	_ = os.Remove(tmp)
	if err := os.Symlink(abs, tmp); err != nil {
		return fmt.Errorf("install plugin: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("install plugin: %w", err)
	}
	return nil
}
