package nodedevice

import (
	"fmt"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/dataplane/dns"
)

// Node is the daemon's handle on its node's device process. Its zero
// value, from New, knows of no DNS device: DNS is served in the daemon
// until OpenDNS succeeds.
type Node struct {
	log     *zap.Logger
	dns     *dns.Device
	dnsArgs *DNSArgs
}

// New returns a handle on the node's device process; nothing is started
// before OpenDNS's device starts or StartWireGuard is called.
func New(log *zap.Logger) *Node {
	if log == nil {
		log = zap.NewNop()
	}
	return &Node{log: log}
}

// OpenDNS prepares the DNS part (dns.OpenDevice): a device started for
// DNS alone runs as this package's process, which can take the WireGuard
// device on later. It fails with dns.ErrDeviceUnsupported where the device
// cannot run.
func (n *Node) OpenDNS(o dns.DeviceOptions) (*dns.Device, error) {
	a := &DNSArgs{Dir: o.Dir, Listen: o.ListenAddr, Domain: o.Domain}
	o.Command = Args{DNS: a}.Argv()
	d, err := dns.OpenDevice(o, n.log)
	if err != nil {
		return nil, err
	}
	n.dns, n.dnsArgs = d, a
	return d, nil
}

// found asks the DNS device about itself.
func (n *Node) found() Found {
	if n.dns == nil {
		return Found{}
	}
	s, ok := n.dns.Status()
	return Found{DNSDevice: true, Running: ok, ThisBinary: s.ThisBinary, Hosts: s.WireGuard}
}

// StartWireGuard has a device process serve the userspace WireGuard
// device of ifname (mesh.Options.StartDevice): the running DNS device
// when it can, else a new process (Plan). It returns once the device
// answers on its UAPI socket.
func (n *Node) StartWireGuard(ifname string, mtu int) error {
	f := n.found()
	how := Plan(f, ifname)
	var err error
	switch how {
	case AskDNSDevice:
		err = n.dns.HostWireGuard(ifname, mtu)
	case SpawnBoth:
		err = n.dns.Spawn(Args{DNS: n.dnsArgs, WireGuard: ifname, MTU: mtu}.Argv())
	case SpawnWireGuard:
		err = spawnWireGuard(Args{WireGuard: ifname, MTU: mtu}.Argv(), ifname)
	}
	if err != nil {
		return fmt.Errorf("device process (%s): %w", how, err)
	}
	n.log.Info("wireguard device served by the node's device process", zap.String("if", ifname), zap.Stringer("how", how))
	return nil
}
