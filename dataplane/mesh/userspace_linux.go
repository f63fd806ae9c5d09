package mesh

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"

	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// userspaceDevice is wireguard-go running in this process on a TUN device.
// tun.CreateTUN opens the device with IFF_VNET_HDR, which gives TCP/UDP
// segmentation offload towards the kernel and GRO coalescing; together with
// the batched UDP bind that is what makes it several times faster than the
// one-packet-per-syscall wireguard-go binary.
type userspaceDevice struct {
	name string
	dev  *device.Device
	uapi net.Listener
}

func newUserspaceDevice(name string, mtu int, key wgtypes.Key, log *zap.Logger) (*userspaceDevice, error) {
	t, err := tun.CreateTUN(name, mtu)
	if err != nil {
		return nil, fmt.Errorf("mesh: create tun %s: %w: %w", name, ErrNotSupported, err)
	}
	sl := log.Sugar().With("if", name)
	logger := &device.Logger{
		Verbosef: func(format string, args ...any) { sl.Debugf(format, args...) },
		Errorf:   func(format string, args ...any) { sl.Warnf(format, args...) },
	}
	dev := device.NewDevice(t, conn.NewDefaultBind(), logger)
	d := &userspaceDevice{name: name, dev: dev}
	if err := dev.IpcSet("private_key=" + hex.EncodeToString(key[:]) + "\n"); err != nil {
		dev.Close()
		return nil, fmt.Errorf("mesh: set key: %w", err)
	}
	if err := dev.Up(); err != nil {
		dev.Close()
		return nil, fmt.Errorf("mesh: device up: %w", err)
	}
	// The UAPI socket lets operators run `wg show <if>`. It lives in
	// /var/run/wireguard, shared by every namespace of the machine, so a name
	// clash is only logged: the mesh works without it.
	if f, err := ipc.UAPIOpen(name); err != nil {
		log.Warn("wireguard UAPI socket unavailable", zap.String("if", name), zap.Error(err))
	} else if l, err := ipc.UAPIListen(name, f); err != nil {
		f.Close()
		log.Warn("wireguard UAPI socket unavailable", zap.String("if", name), zap.Error(err))
	} else {
		d.uapi = l
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go dev.IpcHandle(c)
			}
		}()
	}
	return d, nil
}

func (d *userspaceDevice) mode() string { return ModeUserspace }

func (d *userspaceDevice) apply(p Plan) error {
	text, err := p.UAPI()
	if err != nil || text == "" {
		return err
	}
	if err := d.dev.IpcSet(text); err != nil {
		return fmt.Errorf("ipc set: %w", err)
	}
	return nil
}

func (d *userspaceDevice) close() error {
	var errs []error
	if d.uapi != nil {
		if err := d.uapi.Close(); err != nil && !strings.Contains(err.Error(), "closed") {
			errs = append(errs, err)
		}
	}
	// Closing the device closes the TUN fd, which removes the interface
	// and with it the address and routes.
	d.dev.Close()
	return errors.Join(errs...)
}
