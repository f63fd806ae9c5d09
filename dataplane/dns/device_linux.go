package dns

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// maxSocketPath is the longest path a unix socket address holds.
const maxSocketPath = 107

// exeIdentity names the binary this process runs: a successor is started
// when the device's differs from the daemon's (an upgrade).
func exeIdentity() string {
	fi, err := os.Stat("/proc/self/exe")
	if err != nil {
		return ""
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	return fmt.Sprintf("%d:%d:%d", st.Dev, st.Ino, fi.ModTime().UnixNano())
}

// DevicePart is a DNS device serving in this process: the node's device
// process (dataplane/nodedevice) starts it with StartDevice.
type DevicePart struct {
	dir     string
	srv     *Server
	host    DeviceHost
	exe     string
	log     *log.Logger
	ln      *net.UnixListener
	sockIno uint64
	ended   chan Ended

	mu      sync.Mutex
	bound   bool
	bindErr error
	done    bool
}

// StartDevice serves the table in o.Dir on o.ListenAddr (waiting for the
// address to exist) and takes over from a device already serving o.Dir:
// it serves the port beside the predecessor before asking it to leave.
// The part ends when asked to exit, when o.Dir is removed, or when a
// successor took its control socket; Ended says when. host may be nil.
func StartDevice(o DeviceOptions, host DeviceHost, l *log.Logger) (*DevicePart, error) {
	srv, err := New(Options{ListenAddr: o.ListenAddr, Domain: o.Domain, ReusePort: true})
	if err != nil {
		return nil, err
	}
	c, err := readConfig(o.Dir)
	if err == nil {
		err = srv.Set(c)
	}
	if err != nil {
		l.Printf("starting with an empty table: %v", err)
	}
	d := &DevicePart{dir: o.Dir, srv: srv, host: host, exe: exeIdentity(), log: l, ended: make(chan Ended, 1)}
	old, oldErr := call(o.Dir, "status", time.Second)
	d.bind(oldErr == nil && old.Bound)
	if oldErr == nil {
		// The predecessor leaves once this process serves the port too.
		// Its process may stay (serving WireGuard): what matters is that
		// its DNS part let go of the control socket.
		if _, err := call(o.Dir, "exit", 2*time.Second); err != nil {
			l.Printf("predecessor %d: %v", old.Pid, err)
		}
		waitLetGo(o.Dir, old.Pid, 2*time.Second)
	}
	sock := filepath.Join(o.Dir, controlSocket)
	_ = os.Remove(sock)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("dns device: control socket: %w", err)
	}
	// Closing must never remove the path: by then it may be a
	// successor's socket.
	ln.SetUnlinkOnClose(false)
	fi, err := os.Stat(sock)
	if err != nil {
		ln.Close()
		srv.Close()
		return nil, fmt.Errorf("dns device: control socket: %w", err)
	}
	d.ln, d.sockIno = ln, fi.Sys().(*syscall.Stat_t).Ino
	l.Printf("dns serving %s (pid %d)", o.ListenAddr, os.Getpid())
	go d.watch(sock)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				d.end(EndedPart, "control socket: "+err.Error())
				return
			}
			go d.serve(conn)
		}
	}()
	return d, nil
}

// Ended delivers how the part ended, once.
func (d *DevicePart) Ended() <-chan Ended { return d.ended }

// end stops serving names and the control socket; only the first call
// counts.
func (d *DevicePart) end(how Ended, why string) {
	d.mu.Lock()
	if d.done {
		d.mu.Unlock()
		return
	}
	d.done = true
	d.mu.Unlock()
	d.log.Printf("dns part ends: %s", why)
	d.ln.Close()
	d.srv.Close()
	d.ended <- how
}

// bind starts serving, retrying until the listen address exists (the
// bridge's gateway appears with the node's first container). With wait it
// blocks until bound: a predecessor is serving and must not leave first.
func (d *DevicePart) bind(wait bool) {
	try := func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.done {
			return true
		}
		err := d.srv.Start()
		d.bound, d.bindErr = err == nil, err
		return err == nil
	}
	if try() {
		return
	}
	loop := func() {
		for !try() {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if wait {
		loop()
		return
	}
	go loop()
}

func (d *DevicePart) serve(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil {
		return
	}
	var req request
	var resp response
	if err := json.Unmarshal(line, &req); err != nil {
		resp.Err = err.Error()
	}
	exit := false
	switch req.Op {
	case "reload":
		c, err := readConfig(d.dir)
		if err == nil {
			err = d.srv.Set(c)
		}
		if err != nil {
			resp.Err = err.Error()
		}
	case "status":
	case "exit":
		exit = true
	case "wireguard":
		switch {
		case d.host == nil:
			resp.Err = "this device serves no wireguard"
		default:
			if err := d.host.AddWireGuard(req.IfName, req.MTU); err != nil {
				resp.Err = err.Error()
			}
		}
	default:
		resp.Err = fmt.Sprintf("unknown op %q", req.Op)
	}
	d.mu.Lock()
	resp.Bound = d.bound
	if !d.bound && d.bindErr != nil && resp.Err == "" && req.Op == "status" {
		resp.Err = d.bindErr.Error()
	}
	d.mu.Unlock()
	resp.Exe, resp.Pid = d.exe, os.Getpid()
	if d.host != nil {
		resp.WireGuard = d.host.WireGuard()
	}
	_ = json.NewEncoder(conn).Encode(resp)
	if exit {
		conn.Close()
		how, what := EndedPart, "asked to exit"
		if req.All {
			how, what = EndedAll, "asked to exit with its process"
		}
		d.end(how, what)
	}
}

// watch ends the part when its directory is removed (the node left, or a
// test cleaned up) or its control socket is another process's.
func (d *DevicePart) watch(sock string) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for range t.C {
		d.mu.Lock()
		done := d.done
		d.mu.Unlock()
		if done {
			return
		}
		fi, err := os.Stat(sock)
		if err != nil {
			if _, derr := os.Stat(d.dir); errors.Is(derr, os.ErrNotExist) {
				d.end(EndedPart, d.dir+" removed")
				return
			}
			continue
		}
		if fi.Sys().(*syscall.Stat_t).Ino != d.sockIno {
			d.end(EndedPart, "control socket taken over")
			return
		}
	}
}

// waitLetGo waits up to d for the device pid to leave the control socket
// of dir: its process exited, or its DNS part stopped answering there.
func waitLetGo(dir string, pid int, d time.Duration) bool {
	for end := time.Now().Add(d); processAlive(pid); time.Sleep(20 * time.Millisecond) {
		if r, err := call(dir, "status", 200*time.Millisecond); err != nil || r.Pid != pid {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
	return true
}

func processAlive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

// waitExit waits up to d for pid to exit and reports whether it did.
func waitExit(pid int, d time.Duration) bool {
	for end := time.Now().Add(d); processAlive(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			return false
		}
	}
	return true
}

// Device is the daemon's handle on the DNS device serving its node: the
// same Set and Start as Server, but Close leaves the device serving.
type Device struct {
	o   DeviceOptions
	exe string
	log *zap.Logger

	mu      sync.Mutex
	started bool // Start has made sure a device of this binary runs
}

// OpenDevice prepares o.Dir; no process is started before Start.
func OpenDevice(o DeviceOptions, logger *zap.Logger) (*Device, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	if len(o.Command) == 0 {
		return nil, errors.New("dns: device options without the command that starts a device")
	}
	if len(filepath.Join(o.Dir, controlSocket)) > maxSocketPath {
		return nil, fmt.Errorf("%w: control socket path under %s is too long", ErrDeviceUnsupported, o.Dir)
	}
	exe := exeIdentity()
	if exe == "" {
		return nil, fmt.Errorf("%w: cannot identify the running binary", ErrDeviceUnsupported)
	}
	// Validate as the device will, so a bad option fails here.
	if _, err := New(Options{ListenAddr: o.ListenAddr, Domain: o.Domain}); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("dns: device dir: %w", err)
	}
	return &Device{o: o, exe: exe, log: logger}, nil
}

// Set writes the table and has the device load it. Before Start the
// table is only written: the device loads it when it starts.
func (d *Device) Set(c *Config) error {
	if _, err := newTable(c); err != nil {
		return err
	}
	if err := writeConfig(d.o.Dir, c); err != nil {
		return err
	}
	d.mu.Lock()
	started := d.started
	d.mu.Unlock()
	if !started {
		return nil
	}
	r, err := call(d.o.Dir, "reload", 5*time.Second)
	if err != nil {
		// The device died (or was killed): start another, which loads
		// the table just written.
		return d.ensure()
	}
	if r.Err != "" {
		return fmt.Errorf("dns device: %s", r.Err)
	}
	return nil
}

// Start makes sure a device of this binary serves the directory, starting
// one if none answers or the one answering runs another binary. It returns
// an error while the device waits for its listen address.
func (d *Device) Start() error {
	if err := d.ensure(); err != nil {
		return err
	}
	r, err := call(d.o.Dir, "status", 2*time.Second)
	if err != nil {
		return fmt.Errorf("dns device: %w", err)
	}
	if !r.Bound {
		return fmt.Errorf("dns device not serving yet: %s", r.Err)
	}
	return nil
}

func (d *Device) ensure() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, err := call(d.o.Dir, "status", 2*time.Second)
	if err == nil && r.Exe == d.exe {
		if !d.started {
			d.log.Info("reusing running dns device", zap.Int("pid", r.Pid))
			// It serves the table it last loaded, perhaps of the previous
			// daemon: load the one written since.
			r, err := call(d.o.Dir, "reload", 5*time.Second)
			if err != nil {
				return fmt.Errorf("dns device %d: %w", r.Pid, err)
			}
			if r.Err != "" {
				return fmt.Errorf("dns device %d: reload: %s", r.Pid, r.Err)
			}
		}
		d.started = true
		return nil
	}
	return d.spawn(d.o.Command)
}

// DeviceStatus is what the device serving a directory says of itself.
type DeviceStatus struct {
	Pid        int
	ThisBinary bool   // it runs the binary this process runs
	WireGuard  string // the interface whose WireGuard device its process serves
}

// Status asks the device serving the directory about itself; false when
// none answers.
func (d *Device) Status() (DeviceStatus, bool) {
	r, err := call(d.o.Dir, "status", 2*time.Second)
	if err != nil {
		return DeviceStatus{}, false
	}
	return DeviceStatus{Pid: r.Pid, ThisBinary: r.Exe == d.exe, WireGuard: r.WireGuard}, true
}

// HostWireGuard has the process of the running device serve the userspace
// WireGuard device of ifname as well.
func (d *Device) HostWireGuard(ifname string, mtu int) error {
	r, err := callReq(d.o.Dir, request{Op: "wireguard", IfName: ifname, MTU: mtu}, 10*time.Second)
	if err != nil {
		return err
	}
	if r.Err != "" {
		return fmt.Errorf("dns device %d: wireguard %s: %s", r.Pid, ifname, r.Err)
	}
	return nil
}

// Spawn starts a device process of this binary with args (after the
// binary's path; they must serve this Device's options) and waits until
// it answers on the control socket, having taken over from any device
// serving there before.
func (d *Device) Spawn(args []string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.spawn(args)
}

func (d *Device) spawn(args []string) error {
	if len(args) == 0 {
		return errors.New("dns device: no command to start it with")
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("dns device: %w", err)
	}
	out, err := os.OpenFile(filepath.Join(d.o.Dir, deviceLog), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("dns device: %w", err)
	}
	defer out.Close()
	cmd := exec.Command(self, args...)
	// Its own session, so that signals to the daemon's process group (a
	// service manager stopping it) leave the device serving.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("dns device: start: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(15 * time.Second)
	for {
		r, err := call(d.o.Dir, "status", time.Second)
		if err == nil && r.Pid == cmd.Process.Pid {
			d.log.Info("started dns device", zap.Int("pid", r.Pid), zap.String("listen", d.o.ListenAddr), zap.String("wireguard", r.WireGuard))
			d.started = true
			return nil
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(filepath.Join(d.o.Dir, deviceLog))
			return fmt.Errorf("dns device exited: %v: %s", err, tail(string(b), 300))
		case <-deadline:
			return errors.New("dns device did not open its control socket")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Close leaves the device serving: the next daemon adopts it.
func (d *Device) Close() error { return nil }

// StopDevice ends the device serving dir, if any, with its process, and
// removes dir. It reports whether a device was running.
func StopDevice(dir string) (bool, error) {
	r, err := call(dir, "status", time.Second)
	running := err == nil
	if running {
		// The whole process: what else it serves goes with the node.
		_, _ = callReq(dir, request{Op: "exit", All: true}, 2*time.Second)
		if !waitExit(r.Pid, 5*time.Second) {
			_ = syscall.Kill(r.Pid, syscall.SIGKILL)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return running, fmt.Errorf("dns: remove %s: %w", dir, err)
	}
	return running, nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
