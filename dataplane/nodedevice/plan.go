package nodedevice

// Start is how the daemon has its userspace WireGuard device served when
// no device answers on the interface's UAPI socket.
type Start int

const (
	// AskDNSDevice: the running DNS device runs this binary and takes the
	// WireGuard device on in its process — one process for both.
	AskDNSDevice Start = iota
	// SpawnBoth: a new process serves both; its DNS part takes over from
	// the DNS device running, if any (of another binary: an upgrade whose
	// WireGuard device is gone).
	SpawnBoth
	// SpawnWireGuard: a new process serves the WireGuard device alone —
	// DNS is served in the daemon, or a DNS device of this binary serves
	// another interface's WireGuard device and is left as it is.
	SpawnWireGuard
)

func (s Start) String() string {
	switch s {
	case AskDNSDevice:
		return "ask the dns device"
	case SpawnBoth:
		return "spawn both"
	case SpawnWireGuard:
		return "spawn wireguard alone"
	}
	return "unknown"
}

// Found is what the daemon found of the node's devices.
type Found struct {
	DNSDevice bool // DNS is served by a device process (not in the daemon)
	Running   bool // a DNS device answers on its control socket
	// ThisBinary: the running DNS device runs the daemon's binary (else it
	// is of another release, to be succeeded).
	ThisBinary bool
	// Hosts is the interface whose WireGuard device the running DNS
	// device's process serves ("" for none, and for devices of earlier
	// releases).
	Hosts string
}

// Plan decides which process serves the WireGuard device of ifname.
func Plan(f Found, ifname string) Start {
	switch {
	case !f.DNSDevice:
		return SpawnWireGuard
	case !f.Running, !f.ThisBinary:
		return SpawnBoth
	case f.Hosts != "" && f.Hosts != ifname:
		return SpawnWireGuard
	}
	return AskDNSDevice
}
