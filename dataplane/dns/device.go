package dns

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// The DNS device is this package's Server in a process of its own (the
// node's device process, dataplane/nodedevice, which may host the
// userspace WireGuard device beside it): a daemon that crashes, restarts or
// is upgraded takes the node's names away from its tasks for as long as it
// is down unless something else holds the port. The daemon writes the name
// table to a file in the device's directory and tells the device to load
// it over a control socket there; the device outlives the daemon, a
// restarted daemon finds it answering, and a daemon of another binary
// starts a successor that binds the same port (SO_REUSEPORT) before the
// predecessor's DNS part ends, so a lookup is answered throughout.

const (
	configFile    = "config.json"
	controlSocket = "control.sock"
	deviceLog     = "device.log"
)

// ErrDeviceUnsupported is returned by OpenDevice where the device process
// cannot run; callers serve DNS in process instead.
var ErrDeviceUnsupported = errors.New("dns: device process not supported")

// DeviceOptions configure a Device.
type DeviceOptions struct {
	Dir        string // holds the table and the control socket; the device exits when it goes
	ListenAddr string
	Domain     string
	// Command is what follows the binary's path in the argv of a process
	// that serves these options as a device (nodedevice.DNSArgs).
	Command []string
}

// DeviceHost is the process a DNS device runs in: it may serve the node's
// userspace WireGuard device too, and the device's control socket is how
// a daemon reaches the process.
type DeviceHost interface {
	// WireGuard names the interface whose device the process serves, ""
	// for none.
	WireGuard() string
	// AddWireGuard has the process serve the device of ifname as well.
	AddWireGuard(ifname string, mtu int) error
}

// Ended says how a DNS device's part of its process ended.
type Ended int

const (
	// EndedPart: the DNS part alone ended (a successor took over, its
	// directory went, or it was asked to exit); the process keeps what
	// else it serves.
	EndedPart Ended = iota
	// EndedAll: the process is asked to end with everything it serves
	// (the node leaves).
	EndedAll
)

// request and response are the control protocol: one JSON line each way.
// Devices of earlier releases ignore the fields they do not know and
// answer an op they do not know with an error.
type request struct {
	Op     string `json:"op"`            // reload, status, exit or wireguard
	All    bool   `json:"all,omitempty"` // exit: the whole process, not only the DNS part
	IfName string `json:"ifname,omitempty"`
	MTU    int    `json:"mtu,omitempty"`
}

type response struct {
	Err       string `json:"err,omitempty"`
	Bound     bool   `json:"bound"` // serving on the listen address
	Exe       string `json:"exe"`   // identity of the device's binary
	Pid       int    `json:"pid"`
	WireGuard string `json:"wireguard,omitempty"` // the interface whose device the process serves
}

// call sends one request to the device in dir and returns its answer.
func call(dir string, op string, timeout time.Duration) (response, error) {
	return callReq(dir, request{Op: op}, timeout)
}

func callReq(dir string, req request, timeout time.Duration) (response, error) {
	var r response
	op := req.Op
	c, err := net.DialTimeout("unix", filepath.Join(dir, controlSocket), timeout)
	if err != nil {
		return r, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return r, err
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return r, fmt.Errorf("dns device %s: %w", op, err)
	}
	if err := json.Unmarshal(line, &r); err != nil {
		return r, fmt.Errorf("dns device %s: %w", op, err)
	}
	return r, nil
}

// writeConfig replaces the table file atomically, so a device loading it
// (or starting) never reads half a table.
func writeConfig(dir string, c *Config) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("dns: encode table: %w", err)
	}
	tmp, err := os.CreateTemp(dir, configFile+".*")
	if err != nil {
		return fmt.Errorf("dns: write table: %w", err)
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("dns: write table: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, configFile)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("dns: write table: %w", err)
	}
	return nil
}

// readConfig loads the table file; a missing file is an empty table.
func readConfig(dir string) (*Config, error) {
	b, err := os.ReadFile(filepath.Join(dir, configFile))
	if errors.Is(err, os.ErrNotExist) {
		return &Config{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dns: read table: %w", err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("dns: table %s: %w", filepath.Join(dir, configFile), err)
	}
	return &c, nil
}
