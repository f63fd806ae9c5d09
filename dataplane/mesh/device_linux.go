package mesh

import (
	"errors"
	"fmt"
	"log"
	"net"
	"path/filepath"
	"time"

	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// ServedDevice is wireguard-go on a TUN device, served to other processes
// through its UAPI socket: the node's device process (dataplane/nodedevice)
// runs one. It holds no keys of its own: the agent configures it through
// the UAPI socket, as it would the kernel module, and a restarted agent
// finds it there with its peers — so pod traffic between nodes never
// depends on the agent process being up.
type ServedDevice struct {
	Name string
	dev  *device.Device
	uapi net.Listener
}

// ServeDevice creates the TUN device name with its UAPI socket and sets
// it up. l receives wireguard-go's errors.
func ServeDevice(name string, mtu int, l *log.Logger) (*ServedDevice, error) {
	t, err := tun.CreateTUN(name, mtu)
	if err != nil {
		return nil, fmt.Errorf("mesh: create tun %s: %w", name, err)
	}
	logger := &device.Logger{Verbosef: func(string, ...any) {}, Errorf: l.Printf}
	dev := device.NewDevice(t, conn.NewDefaultBind(), logger)
	f, err := ipc.UAPIOpen(name)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("mesh: uapi %s: %w", name, err)
	}
	uapi, err := ipc.UAPIListen(name, f)
	if err != nil {
		f.Close()
		dev.Close()
		return nil, fmt.Errorf("mesh: uapi %s: %w", name, err)
	}
	go func() {
		for {
			c, err := uapi.Accept()
			if err != nil {
				return
			}
			go dev.IpcHandle(c)
		}
	}()
	if err := dev.Up(); err != nil {
		uapi.Close()
		dev.Close()
		return nil, fmt.Errorf("mesh: %s up: %w", name, err)
	}
	return &ServedDevice{Name: name, dev: dev, uapi: uapi}, nil
}

// Done is closed when the TUN device went away (the interface deleted).
func (d *ServedDevice) Done() <-chan struct{} { return d.dev.Wait() }

// Close removes the device, and with it the interface.
func (d *ServedDevice) Close() {
	d.uapi.Close()
	d.dev.Close()
}

func uapiPath(name string) string { return filepath.Join("/var/run/wireguard", name+".sock") }

func uapiAlive(name string) bool {
	c, err := net.DialTimeout("unix", uapiPath(name), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// DeviceAlive reports whether a userspace device of ifname answers on its
// UAPI socket.
func DeviceAlive(ifname string) bool { return uapiAlive(ifname) }

// ensureDevice makes sure a device process serves name, having
// o.StartDevice start one when none answers.
func ensureDevice(o Options) error {
	if uapiAlive(o.IfName) {
		o.Logger.Info("reusing running wireguard device", zap.String("if", o.IfName))
		return nil
	}
	if o.StartDevice == nil {
		return fmt.Errorf("mesh: no device process serves %s, and nothing to start one: %w", o.IfName, ErrNotSupported)
	}
	if err := o.StartDevice(o.IfName, o.MTU); err != nil {
		return fmt.Errorf("mesh: device process for %s: %w", o.IfName, err)
	}
	if !uapiAlive(o.IfName) {
		return fmt.Errorf("mesh: device process for %s started, but its UAPI socket does not answer", o.IfName)
	}
	return nil
}

// persistentDevice drives a device that outlives this process (kernel link
// or device process) through wgctrl; close leaves it in place.
type persistentDevice struct {
	name  string
	kind  string
	wgctl *wgctrl.Client
}

// adoptDevice sets the node's key on the device and returns what it
// already holds, so the first Set after a restart is a no-op when nothing
// changed.
func adoptDevice(name string, key wgtypes.Key, kind string) (*persistentDevice, *Config, error) {
	c, err := wgctrl.New()
	if err != nil {
		return nil, nil, fmt.Errorf("mesh: wgctrl: %w", err)
	}
	d := &persistentDevice{name: name, kind: kind, wgctl: c}
	cur, err := c.Device(name)
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("mesh: read %s: %w", name, err)
	}
	if cur.PrivateKey != key {
		// Another key means another node's device: start from no peers.
		if err := c.ConfigureDevice(name, wgtypes.Config{PrivateKey: &key, ReplacePeers: true}); err != nil {
			c.Close()
			return nil, nil, fmt.Errorf("mesh: configure %s: %w", name, err)
		}
		return d, &Config{}, nil
	}
	seed := &Config{ListenPort: uint16(cur.ListenPort)}
	for _, p := range cur.Peers {
		peer := Peer{PublicKey: p.PublicKey.String()}
		if p.Endpoint != nil {
			peer.Endpoint = p.Endpoint.AddrPort()
		}
		for _, a := range p.AllowedIPs {
			if pf, ok := ipNetPrefix(a); ok {
				peer.AllowedIPs = append(peer.AllowedIPs, pf)
			}
		}
		seed.Peers = append(seed.Peers, peer)
	}
	return d, seed, nil
}

func (d *persistentDevice) mode() string { return d.kind }

func (d *persistentDevice) apply(p Plan) error {
	if p.ListenPort == nil && len(p.Peers) == 0 {
		return nil
	}
	cfg, err := p.WGConfig()
	if err != nil {
		return err
	}
	return d.wgctl.ConfigureDevice(d.name, cfg)
}

func (d *persistentDevice) close() error {
	err := d.wgctl.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
