//go:build linux

package networktest

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/warrenhq/warren/controlplane/testutil"
)

func ktestOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// listenIn opens a TCP listener inside a namespace (a socket belongs to the
// namespace it was created in) that echoes one line back on each connection.
func listenIn(t *testing.T, nsName string, addr netip.AddrPort) netip.AddrPort {
	t.Helper()
	var ln net.Listener
	err := ns.WithNetNSPath(nsPath(nsName), func(ns.NetNS) (err error) {
		ln, err = net.Listen("tcp4", addr.String())
		return err
	})
	if err != nil {
		t.Fatalf("listen in %s: %v", nsName, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// dialFrom connects from inside a namespace, sends a message and expects it
// back. It returns the first error; callers retry with a deadline.
func dialFrom(nsName string, to netip.AddrPort, msg string) error {
	return ns.WithNetNSPath(nsPath(nsName), func(ns.NetNS) error {
		c, err := net.DialTimeout("tcp4", to.String(), 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.WriteString(c, msg); err != nil {
			return err
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if string(buf) != msg {
			return fmt.Errorf("echo %q, want %q", buf, msg)
		}
		return nil
	})
}

// eventually is the repository's one polling helper, named as these tests
// have always called it.
var eventually = testutil.Eventually[func() error]
