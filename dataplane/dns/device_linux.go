package dns

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/memlimit"
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

// DeviceMain runs the DNS device: `warren __dns-device DIR LISTEN DOMAIN`.
// It serves the table in DIR on LISTEN (waiting for the address to exist),
// takes over from a device already serving DIR, and exits on SIGTERM, on
// an exit request, when DIR is removed, or when a successor took its
// control socket.
func DeviceMain(args []string) {
	l := log.New(os.Stderr, "warren-dns: ", log.LstdFlags)
	if len(args) != 4 {
		l.Fatalf("usage: %s DIR LISTEN DOMAIN", deviceArg)
	}
	dir, listen, domain := args[1], args[2], args[3]
	srv, err := New(Options{ListenAddr: listen, Domain: domain, ReusePort: true})
	if err != nil {
		l.Fatal(err)
	}
	c, err := readConfig(dir)
	if err == nil {
		err = srv.Set(c)
	}
	if err != nil {
		l.Printf("starting with an empty table: %v", err)
	}
	d := &deviceProc{dir: dir, srv: srv, exe: exeIdentity(), log: l}
	old, oldErr := call(dir, "status", time.Second)
	d.bind(oldErr == nil && old.Bound)
	if oldErr == nil {
		// The predecessor leaves once this process serves the port too.
		if _, err := call(dir, "exit", 2*time.Second); err != nil {
			l.Printf("predecessor %d: %v", old.Pid, err)
		}
		waitExit(old.Pid, 2*time.Second)
	}
	sock := filepath.Join(dir, controlSocket)
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		l.Fatalf("control socket: %v", err)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		l.Fatalf("control socket: %v", err)
	}
	d.sockIno = fi.Sys().(*syscall.Stat_t).Ino
	l.Printf("serving %s (pid %d)", listen, os.Getpid())
	// The device lives for as long as the node: it keeps little (a name
	// table), so a small heap target and the start-up garbage (every
	// package's init in this binary) handed back cost nothing and keep it
	// a few MB smaller.
	debug.SetGCPercent(25)
	debug.FreeOSMemory()
	// And the binary's pages start-up touched (most of it) are mapped
	// again only as they are used: ~7 of the 21 MiB it maps by now.
	_, _ = memlimit.TrimBinary()
	go memlimit.TrimBinaryEvery(context.Background())
	go d.watch(sock)
	go func() {
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
		<-term
		d.exit(0)
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			l.Fatalf("control socket: %v", err)
		}
		go d.serve(conn)
	}
}

type deviceProc struct {
	dir     string
	srv     *Server
	exe     string
	log     *log.Logger
	sockIno uint64

	mu      sync.Mutex
	bound   bool
	bindErr error
}

// bind starts serving, retrying until the listen address exists (the
// bridge's gateway appears with the node's first container). With wait it
// blocks until bound: a predecessor is serving and must not leave first.
func (d *deviceProc) bind(wait bool) {
	try := func() bool {
		err := d.srv.Start()
		d.mu.Lock()
		d.bound, d.bindErr = err == nil, err
		d.mu.Unlock()
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

func (d *deviceProc) serve(conn net.Conn) {
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
	_ = json.NewEncoder(conn).Encode(resp)
	if exit {
		conn.Close()
		d.log.Printf("asked to exit")
		d.exit(0)
	}
}

// watch ends the device when its directory is removed (the node left, or
// a test cleaned up) or its control socket is another process's.
func (d *deviceProc) watch(sock string) {
	for range time.Tick(time.Second) {
		fi, err := os.Stat(sock)
		if err != nil {
			if _, derr := os.Stat(d.dir); errors.Is(derr, os.ErrNotExist) {
				d.log.Printf("%s removed, exiting", d.dir)
				d.exit(0)
			}
			continue
		}
		if fi.Sys().(*syscall.Stat_t).Ino != d.sockIno {
			d.log.Printf("control socket taken over, exiting")
			d.exit(0)
		}
	}
}

func (d *deviceProc) exit(code int) {
	d.srv.Close()
	os.Exit(code)
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
		}
		d.started = true
		return nil
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
	cmd := exec.Command(self, deviceArg, d.o.Dir, d.o.ListenAddr, d.o.Domain)
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
			d.log.Info("started dns device", zap.Int("pid", r.Pid), zap.String("listen", d.o.ListenAddr))
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

// StopDevice ends the device serving dir, if any, and removes dir. It
// reports whether a device was running.
func StopDevice(dir string) (bool, error) {
	r, err := call(dir, "status", time.Second)
	running := err == nil
	if running {
		_, _ = call(dir, "exit", 2*time.Second)
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
