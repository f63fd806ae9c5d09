package nodedevice

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
)

// Arg is the first argument with which this binary runs as the node's
// device process.
const Arg = "__node-device"

// The device processes of earlier releases, one for each part: a daemon of
// such a release running after its binary was replaced in place starts
// this binary with them.
const (
	legacyDNSArg       = "__dns-device"       // DIR LISTEN DOMAIN
	legacyWireGuardArg = "__wireguard-device" // IFNAME MTU
)

// IsInvocation reports whether args (os.Args[1:]) ask this binary to run
// the node's device process; cmd/warren checks it first thing and calls
// Main.
func IsInvocation(args []string) bool {
	if len(args) == 0 {
		return false
	}
	switch args[0] {
	case Arg, legacyDNSArg, legacyWireGuardArg:
		return true
	}
	return false
}

// DNSArgs are the DNS part's options.
type DNSArgs struct {
	Dir, Listen, Domain string
}

// Args say what a device process serves.
type Args struct {
	DNS       *DNSArgs // nil: no DNS part
	WireGuard string   // the interface of the userspace WireGuard part; "": none
	MTU       int
}

// Argv is what follows the binary's path in the command line of a device
// process serving a.
func (a Args) Argv() []string {
	out := []string{Arg}
	if a.DNS != nil {
		out = append(out, "-dns-dir", a.DNS.Dir, "-dns-listen", a.DNS.Listen, "-dns-domain", a.DNS.Domain)
	}
	if a.WireGuard != "" {
		out = append(out, "-wireguard", a.WireGuard, "-mtu", strconv.Itoa(a.MTU))
	}
	return out
}

// ParseArgs reads a device process's arguments (os.Args[1:]), in this
// release's form or an earlier one's.
func ParseArgs(args []string) (Args, error) {
	if len(args) == 0 {
		return Args{}, errors.New("device: no arguments")
	}
	switch args[0] {
	case legacyDNSArg:
		if len(args) != 4 {
			return Args{}, fmt.Errorf("device: usage: %s DIR LISTEN DOMAIN", legacyDNSArg)
		}
		return Args{DNS: &DNSArgs{Dir: args[1], Listen: args[2], Domain: args[3]}}, nil
	case legacyWireGuardArg:
		if len(args) != 3 {
			return Args{}, fmt.Errorf("device: usage: %s IFNAME MTU", legacyWireGuardArg)
		}
		mtu, err := strconv.Atoi(args[2])
		if err != nil || mtu <= 0 {
			return Args{}, fmt.Errorf("device: mtu %q: not a positive number", args[2])
		}
		return Args{WireGuard: args[1], MTU: mtu}, nil
	case Arg:
	default:
		return Args{}, fmt.Errorf("device: %q is not a device invocation", args[0])
	}
	fs := flag.NewFlagSet(Arg, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var d DNSArgs
	var a Args
	fs.StringVar(&d.Dir, "dns-dir", "", "the DNS device's directory")
	fs.StringVar(&d.Listen, "dns-listen", "", "the address DNS is served on")
	fs.StringVar(&d.Domain, "dns-domain", "", "the cluster's domain")
	fs.StringVar(&a.WireGuard, "wireguard", "", "the interface of the userspace WireGuard device")
	fs.IntVar(&a.MTU, "mtu", 0, "the WireGuard interface's MTU")
	if err := fs.Parse(args[1:]); err != nil {
		return Args{}, fmt.Errorf("device: %w", err)
	}
	if fs.NArg() > 0 {
		return Args{}, fmt.Errorf("device: unexpected argument %q", fs.Arg(0))
	}
	switch {
	case d.Dir != "" && (d.Listen == "" || d.Domain == ""):
		return Args{}, errors.New("device: -dns-dir needs -dns-listen and -dns-domain")
	case d.Dir == "" && (d.Listen != "" || d.Domain != ""):
		return Args{}, errors.New("device: -dns-listen and -dns-domain need -dns-dir")
	case d.Dir != "":
		a.DNS = &d
	}
	if a.WireGuard != "" && a.MTU <= 0 {
		return Args{}, fmt.Errorf("device: -wireguard %s needs a positive -mtu", a.WireGuard)
	}
	if a.WireGuard == "" && a.DNS == nil {
		return Args{}, errors.New("device: serves nothing (neither -dns-dir nor -wireguard)")
	}
	return a, nil
}
