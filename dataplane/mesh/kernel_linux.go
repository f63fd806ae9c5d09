package mesh

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// kernelDevice configures the kernel's WireGuard link through wgctrl.
// It cannot run on hosts without the module; the same Plan drives both
// devices, and Plan.WGConfig is unit-tested.
type kernelDevice struct {
	name   string
	client *wgctrl.Client
}

func newKernelDevice(name string, key wgtypes.Key) (*kernelDevice, error) {
	c, err := wgctrl.New()
	if err != nil {
		return nil, fmt.Errorf("mesh: wgctrl: %w", err)
	}
	d := &kernelDevice{name: name, client: c}
	// Start from no peers: a link reused from a previous run may hold stale
	// ones, and the applied state begins empty.
	if err := c.ConfigureDevice(name, wgtypes.Config{PrivateKey: &key, ReplacePeers: true}); err != nil {
		_ = d.close()
		return nil, fmt.Errorf("mesh: configure %s: %w", name, err)
	}
	return d, nil
}

func (d *kernelDevice) mode() string { return ModeKernel }

func (d *kernelDevice) apply(p Plan) error {
	if p.ListenPort == nil && len(p.Peers) == 0 {
		return nil
	}
	cfg, err := p.WGConfig()
	if err != nil {
		return err
	}
	return d.client.ConfigureDevice(d.name, cfg)
}

func (d *kernelDevice) close() error {
	var errs []error
	if l, err := netlink.LinkByName(d.name); err == nil {
		if err := netlink.LinkDel(l); err != nil && !errors.Is(err, syscall.ENODEV) {
			errs = append(errs, fmt.Errorf("mesh: delete %s: %w", d.name, err))
		}
	}
	errs = append(errs, d.client.Close())
	return errors.Join(errs...)
}
