package volume

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Plugin is a driver in an executable of its own, called once per
// operation (like a CNI plugin): `<Path> <operation>` with the Request as
// JSON on stdin and WARREN_VOLUME_COMMAND=<operation> in the environment.
// Exit status 0 is success; stdout may then hold a Response (capabilities
// must). On failure, the Response's error, else the end of stderr, is the
// message. docs/volumes.md is the contract.
type Plugin struct {
	Name string
	Path string
	// Timeouts per operation; a zero value uses DefaultTimeouts.
	Timeouts Timeouts
}

// Timeouts bound each plugin call. A plugin that outlives its timeout is
// killed with its whole process group, so a hung mount helper cannot pile
// up behind retries.
type Timeouts struct {
	Capabilities, Create, Delete, Attach, Mount, Unmount time.Duration
}

// DefaultTimeouts leave a network mount time to connect and everything else
// little.
var DefaultTimeouts = Timeouts{
	Capabilities: 5 * time.Second, Create: 30 * time.Second, Delete: 30 * time.Second,
	Attach: 30 * time.Second, Mount: 60 * time.Second, Unmount: 30 * time.Second,
}

// Response is what a plugin prints on stdout.
type Response struct {
	Version string `json:"version,omitempty"`
	// Error, when set, is the failure's message (with a non-zero exit).
	Error string `json:"error,omitempty"`
	Capabilities
}

// stderrTail is how much of a failing plugin's stderr a task error quotes.
const stderrTail = 512

func (p Plugin) timeout(op string) time.Duration {
	pick := func(d, def time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return def
	}
	t, d := p.Timeouts, DefaultTimeouts
	switch op {
	case "capabilities":
		return pick(t.Capabilities, d.Capabilities)
	case "create":
		return pick(t.Create, d.Create)
	case "delete":
		return pick(t.Delete, d.Delete)
	case "attach":
		return pick(t.Attach, d.Attach)
	case "mount":
		return pick(t.Mount, d.Mount)
	default:
		return pick(t.Unmount, d.Unmount)
	}
}

// call runs one operation and decodes its response.
func (p Plugin) call(ctx context.Context, op string, r Request) (Response, error) {
	r.Version = Version
	in, err := json.Marshal(r)
	if err != nil {
		return Response{}, fmt.Errorf("volume plugin %s %s: encode request: %w", p.Name, op, err)
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout(op))
	defer cancel()
	cmd := exec.CommandContext(ctx, p.Path, op)
	cmd.Env = append(os.Environ(), "WARREN_VOLUME_COMMAND="+op, "WARREN_VOLUME_VERSION="+Version)
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	setProcessGroup(cmd)
	// On timeout the whole group goes, not only the plugin: a helper it
	// started (a mount daemon still connecting) would otherwise outlive it.
	cmd.Cancel = func() error { return killProcessGroup(cmd) }
	// A helper that keeps stdout open (a daemon that did not close it)
	// must not keep us waiting once the plugin itself has exited.
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return Response{}, fmt.Errorf("volume plugin %s %s %s: no answer within %s (killed)", p.Name, op, r.Name, p.timeout(op))
	}
	var resp Response
	out := bytes.TrimSpace(stdout.Bytes())
	var decodeErr error
	if len(out) > 0 {
		if decodeErr = json.Unmarshal(out, &resp); decodeErr != nil {
			decodeErr = fmt.Errorf("invalid response %q: %w", clip(string(out), 120), decodeErr)
		}
	}
	if err != nil {
		msg := resp.Error
		if msg == "" {
			msg = strings.TrimSpace(clip(tail(stderr.String(), stderrTail), stderrTail))
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if msg == "" {
				msg = "no message"
			}
			return Response{}, fmt.Errorf("volume plugin %s %s %s: exit status %d: %s", p.Name, op, r.Name, ee.ExitCode(), msg)
		}
		return Response{}, fmt.Errorf("volume plugin %s %s %s: %w", p.Name, op, r.Name, err)
	}
	if decodeErr != nil {
		return Response{}, fmt.Errorf("volume plugin %s %s %s: %w", p.Name, op, r.Name, decodeErr)
	}
	if resp.Error != "" {
		return Response{}, fmt.Errorf("volume plugin %s %s %s: exit status 0 with error: %s", p.Name, op, r.Name, resp.Error)
	}
	return resp, nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (p Plugin) Capabilities(ctx context.Context) (Capabilities, error) {
	resp, err := p.call(ctx, "capabilities", Request{})
	if err != nil {
		return Capabilities{}, err
	}
	switch resp.Scope {
	case "single-node", "multi-node":
	default:
		return Capabilities{}, fmt.Errorf("volume plugin %s capabilities: scope must be single-node or multi-node, not %q", p.Name, resp.Scope)
	}
	return resp.Capabilities, nil
}

func (p Plugin) Create(ctx context.Context, r Request) error {
	_, err := p.call(ctx, "create", r)
	return err
}
func (p Plugin) Delete(ctx context.Context, r Request) error {
	_, err := p.call(ctx, "delete", r)
	return err
}
func (p Plugin) Attach(ctx context.Context, r Request) error {
	_, err := p.call(ctx, "attach", r)
	return err
}
func (p Plugin) Mount(ctx context.Context, r Request) error {
	_, err := p.call(ctx, "mount", r)
	return err
}
func (p Plugin) Unmount(ctx context.Context, r Request) error {
	_, err := p.call(ctx, "unmount", r)
	return err
}
