package mesh

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/warrenhq/warren/controlplane/memlimit"
)

// DeviceMain runs wireguard-go on a TUN device with its UAPI socket until
// the interface is deleted (or SIGTERM), then exits. It holds no keys of its
// own: the agent configures it through the UAPI socket, as it would the
// kernel module, and a restarted agent finds it there with its peers — so
// pod traffic between nodes never depends on the agent process being up.
func DeviceMain(args []string) {
	l := log.New(os.Stderr, "warren-wireguard: ", log.LstdFlags)
	if len(args) != 3 {
		l.Fatalf("usage: %s IFNAME MTU", deviceArg)
	}
	name := args[1]
	// The start-up garbage (every package's init in this binary) goes
	// back before wireguard-go allocates its packet buffers (hundreds of
	// 64 KiB, up front), not only once the device is up: the idle device
	// then holds ~0.8 MiB less (bench/node, 7.3 → 6.5 MiB anonymous) —
	// fewer of the buffers land on pages init dirtied.
	debug.FreeOSMemory()
	mtu, err := strconv.Atoi(args[2])
	if err != nil {
		l.Fatalf("mtu %q: %v", args[2], err)
	}
	t, err := tun.CreateTUN(name, mtu)
	if err != nil {
		l.Fatalf("create tun %s: %v", name, err)
	}
	logger := &device.Logger{Verbosef: func(string, ...any) {}, Errorf: l.Printf}
	dev := device.NewDevice(t, conn.NewDefaultBind(), logger)
	f, err := ipc.UAPIOpen(name)
	if err != nil {
		l.Fatalf("uapi %s: %v", name, err)
	}
	uapi, err := ipc.UAPIListen(name, f)
	if err != nil {
		l.Fatalf("uapi %s: %v", name, err)
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
		l.Fatalf("up: %v", err)
	}
	// And what setting the device up left, in a process that lives as
	// long as the node.
	debug.FreeOSMemory()
	// And the binary's pages start-up touched, mapped again only as they
	// are used (see memlimit.TrimBinary).
	_, _ = memlimit.TrimBinary()
	go memlimit.TrimBinaryEvery(context.Background())
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-dev.Wait(): // the TUN device went away (interface deleted)
	case <-term:
	}
	uapi.Close()
	dev.Close()
	os.Exit(0)
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

// startDeviceProcess makes sure a device process serves name, starting one
// in its own session (so it outlives the agent) when none answers.
func startDeviceProcess(name string, mtu int, log *zap.Logger) error {
	if uapiAlive(name) {
		log.Info("reusing running wireguard device", zap.String("if", name))
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("mesh: device process: %w", err)
	}
	cmd := exec.Command(self, deviceArg, name, strconv.Itoa(mtu))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("mesh: start device process: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for !uapiAlive(name) {
		select {
		case err := <-exited:
			return fmt.Errorf("mesh: device process for %s exited: %v: %w", name, err, ErrNotSupported)
		case <-ctx.Done():
			return fmt.Errorf("mesh: device process for %s did not open its UAPI socket", name)
		case <-time.After(20 * time.Millisecond):
		}
	}
	log.Info("started wireguard-go device process", zap.String("if", name), zap.Int("pid", cmd.Process.Pid))
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
