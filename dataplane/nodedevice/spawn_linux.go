package nodedevice

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/warrenhq/warren/dataplane/mesh"
)

// spawnWireGuard starts a device process serving the WireGuard device
// ifname alone and waits until its UAPI socket answers.
func spawnWireGuard(argv []string, ifname string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	cmd := exec.Command(self, argv...)
	// Its own session, so that it outlives the daemon's process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	defer devnull.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for !mesh.DeviceAlive(ifname) {
		select {
		case err := <-exited:
			return fmt.Errorf("process for %s exited: %v: %w", ifname, err, mesh.ErrNotSupported)
		case <-ctx.Done():
			return fmt.Errorf("process for %s did not open its UAPI socket", ifname)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}
