package mesh

// deviceArg is the first argument with which this binary runs as a
// persistent userspace WireGuard device (see DeviceMain).
const deviceArg = "__wireguard-device"

// IsDeviceInvocation reports whether args (os.Args[1:]) ask this binary to
// run a persistent userspace WireGuard device; cmd/warren checks it first
// thing and calls DeviceMain.
func IsDeviceInvocation(args []string) bool { return len(args) > 0 && args[0] == deviceArg }
