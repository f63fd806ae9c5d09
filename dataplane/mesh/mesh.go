package mesh

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"go.uber.org/zap"
)

// ErrNotSupported is wrapped when the host lacks kernel WireGuard (or TUN).
var ErrNotSupported = errors.New("mesh: not supported")

// Defaults.
const (
	DefaultIfName     = "warren-wg"
	DefaultListenPort = 51820
	DefaultMTU        = 1420
	// keepalive keeps NAT mappings of edge sites open and makes a peer
	// handshake as soon as it is configured rather than on first traffic.
	keepaliveSeconds = 25
)

// Modes.
const (
	ModeAuto      = "auto"
	ModeKernel    = "kernel"
	ModeUserspace = "userspace"
)

// Mesh is a node's WireGuard interface.
type Mesh interface {
	// Set applies the complete desired configuration; calling it again
	// with the same value changes nothing.
	Set(*Config) error
	// PublicKey is the node's base64 public key, to publish to its peers.
	PublicKey() string
	Close() error
}

// Config is the desired state of the mesh.
type Config struct {
	ListenPort uint16
	// Address is the node's own overlay address, e.g. its gateway 10.42.3.1/32.
	Address netip.Prefix
	Peers   []Peer
}

// Peer is another node.
type Peer struct {
	PublicKey  string // base64
	Endpoint   netip.AddrPort
	AllowedIPs []netip.Prefix // the peer's pod /24
}

// Options choose and name the implementation.
type Options struct {
	Mode    string // kernel | userspace | auto (default)
	IfName  string // default warren-wg; unique per machine (UAPI sockets are machine-wide)
	KeyFile string // private key, created 0600 if missing
	MTU     int
	Logger  *zap.Logger
	// Persist keeps the WireGuard device when the process closes the mesh or
	// dies, so traffic between nodes survives an agent restart. In userspace
	// mode the device then runs in a small process of its own (the node's
	// device process, serving it with ServeDevice) that the next agent finds
	// through its UAPI socket.
	Persist bool
	// StartDevice has a process start serving the userspace device of
	// ifname (ServeDevice) and returns once it answers; New calls it when
	// Persist is set and no device answers yet.
	StartDevice func(ifname string, mtu int) error
}

func (o Options) withDefaults() Options {
	if o.Mode == "" {
		o.Mode = ModeAuto
	}
	if o.IfName == "" {
		o.IfName = DefaultIfName
	}
	if o.MTU == 0 {
		o.MTU = DefaultMTU
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return o
}

func (o Options) validate() error {
	switch o.Mode {
	case ModeAuto, ModeKernel, ModeUserspace:
	default:
		return fmt.Errorf("mesh: unknown mode %q", o.Mode)
	}
	if o.KeyFile == "" {
		return errors.New("mesh: no key file")
	}
	if len(o.IfName) > 15 {
		return fmt.Errorf("mesh: interface name %q longer than 15 bytes", o.IfName)
	}
	return nil
}

// chooseMode decides the implementation from the requested mode and the
// kernel probe's result. A kernel probe failing for another reason than
// missing support is an error even in auto mode: it is not a reason to run
// a slower datapath silently.
func chooseMode(requested string, probe func() error) (string, error) {
	switch requested {
	case ModeUserspace:
		return ModeUserspace, nil
	case ModeKernel, ModeAuto:
		err := probe()
		if err == nil {
			return ModeKernel, nil
		}
		if requested == ModeAuto && errors.Is(err, ErrNotSupported) {
			return ModeUserspace, nil
		}
		return "", err
	}
	return "", fmt.Errorf("mesh: unknown mode %q", requested)
}

// Clone returns a deep copy.
func (c *Config) Clone() *Config {
	if c == nil {
		return nil
	}
	out := &Config{ListenPort: c.ListenPort, Address: c.Address, Peers: make([]Peer, len(c.Peers))}
	for i, p := range c.Peers {
		p.AllowedIPs = slices.Clone(p.AllowedIPs)
		out.Peers[i] = p
	}
	return out
}

// Equal reports whether two configs describe the same state (peer order and
// allowed-IP order do not matter).
func (c *Config) Equal(o *Config) bool {
	if c == nil || o == nil {
		return c == o
	}
	if c.ListenPort != o.ListenPort || c.Address != o.Address || len(c.Peers) != len(o.Peers) {
		return false
	}
	d := Diff(c, o)
	return len(d.Peers) == 0 && len(d.RoutesAdd) == 0 && len(d.RoutesDel) == 0
}
