package nodedevice

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"

	"github.com/warrenhq/warren/controlplane/memlimit"
	"github.com/warrenhq/warren/dataplane/dns"
	"github.com/warrenhq/warren/dataplane/mesh"
)

// Main runs the node's device process with its arguments (os.Args[1:])
// and does not return: it exits when no part remains, on SIGTERM, and
// when the node leaves.
func Main(args []string) {
	l := log.New(os.Stderr, "warren-device: ", log.LstdFlags)
	a, err := ParseArgs(args)
	if err != nil {
		l.Fatal(err)
	}
	// The process lives as long as the node and keeps little (a name
	// table, wireguard-go's pooled buffers): a small heap target, and the
	// start-up garbage (every package's init in this binary) handed back
	// before wireguard-go allocates its buffers (hundreds of 64 KiB, up
	// front), so that fewer of them land on pages init dirtied.
	debug.SetGCPercent(25)
	debug.FreeOSMemory()
	// The DNS part counts from the start: the WireGuard part ending while
	// it takes over from a predecessor must not end the process.
	p := &process{log: l, exit: make(chan int, 1), dns: a.DNS != nil}
	if a.WireGuard != "" {
		if err := p.AddWireGuard(a.WireGuard, a.MTU); err != nil {
			l.Fatal(err)
		}
	}
	if a.DNS != nil {
		part, err := dns.StartDevice(dns.DeviceOptions{Dir: a.DNS.Dir, ListenAddr: a.DNS.Listen, Domain: a.DNS.Domain}, p, l)
		if err != nil {
			p.shutdown(1, err.Error())
		}
		go func() {
			how := <-part.Ended()
			if how == dns.EndedAll {
				p.shutdown(0, "the node leaves")
			}
			p.ended(func() { p.dns = false })
		}()
	}
	// And what setting the parts up left.
	debug.FreeOSMemory()
	// And the binary's pages start-up touched (most of it) are mapped
	// again only as they are used (see memlimit.TrimBinary).
	_, _ = memlimit.TrimBinary()
	go memlimit.TrimBinaryEvery(context.Background())
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-term:
		p.shutdown(0, s.String())
	case code := <-p.exit:
		p.shutdown(code, "no part remains")
	}
}

// process is what the device process serves; it is the DNS part's
// dns.DeviceHost.
type process struct {
	log  *log.Logger
	exit chan int

	mu  sync.Mutex
	wg  *mesh.ServedDevice
	dns bool
}

func (p *process) WireGuard() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.wg == nil {
		return ""
	}
	return p.wg.Name
}

// AddWireGuard serves the WireGuard device of ifname, until its interface
// is deleted; asking again for the same interface changes nothing.
func (p *process) AddWireGuard(ifname string, mtu int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.wg != nil {
		if p.wg.Name == ifname {
			return nil
		}
		return fmt.Errorf("device: serves wireguard %s already, not %s", p.wg.Name, ifname)
	}
	d, err := mesh.ServeDevice(ifname, mtu, p.log)
	if err != nil {
		return err
	}
	p.wg = d
	p.log.Printf("wireguard %s up (pid %d)", ifname, os.Getpid())
	// What setting the device up left, when a running process takes it on.
	debug.FreeOSMemory()
	go func() {
		<-d.Done()
		p.log.Printf("wireguard %s: interface gone", ifname)
		// Its UAPI socket goes too, so that the interface can be served
		// again.
		d.Close()
		p.ended(func() {
			if p.wg == d {
				p.wg = nil
			}
		})
	}()
	return nil
}

// ended records a part's end (change, under the lock) and has the process
// exit when none remains.
func (p *process) ended(change func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	change()
	if p.wg == nil && !p.dns {
		select {
		case p.exit <- 0:
		default:
		}
	}
}

// shutdown ends the process; closing the WireGuard device removes its
// interface, and with it the routes through it.
func (p *process) shutdown(code int, why string) {
	p.mu.Lock()
	wg := p.wg
	p.mu.Unlock()
	p.log.Printf("exiting: %s", why)
	if wg != nil {
		wg.Close()
	}
	os.Exit(code)
}
