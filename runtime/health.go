package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// Health check defaults, as docker's.
const (
	DefaultHealthInterval = 30 * time.Second
	DefaultHealthTimeout  = 30 * time.Second
	DefaultHealthRetries  = 3
	// DefaultHealthPort is probed by HTTP and TCP checks that name no port:
	// a task does not know its service's ports, the check must say.
	DefaultHealthPort = 80
)

// HealthTracker turns probe results into a health state. It is pure: the
// caller passes the time of each observation.
//
// During the start period failures do not count and the task is "starting"
// until its first success. After it, Retries consecutive failures make the
// task unhealthy and one success makes it healthy again.
type HealthTracker struct {
	check    api.HealthCheck
	started  time.Time
	failures uint64
	state    api.HealthState
}

// NewHealthTracker starts tracking a task whose process started at started.
func NewHealthTracker(c api.HealthCheck, started time.Time) *HealthTracker {
	return &HealthTracker{check: c, started: started, state: api.HealthStarting}
}

// Resume continues from a health already established for the same process
// (one adopted after an agent restart), so that the next probes move it
// by the usual rules instead of from "starting". Other states are ignored.
func (h *HealthTracker) Resume(s api.HealthState) {
	if s == api.HealthHealthy || s == api.HealthUnhealthy {
		h.state = s
	}
}

// State is the current health.
func (h *HealthTracker) State() api.HealthState { return h.state }

// Observe records one probe result taken at now and returns the new state.
func (h *HealthTracker) Observe(now time.Time, ok bool) api.HealthState {
	if ok {
		h.failures = 0
		h.state = api.HealthHealthy
		return h.state
	}
	if h.state == api.HealthStarting && now.Sub(h.started) < h.check.StartPeriod.D() {
		return h.state
	}
	h.failures++
	retries := h.check.Retries
	if retries == 0 {
		retries = DefaultHealthRetries
	}
	if h.failures >= retries {
		h.state = api.HealthUnhealthy
	}
	return h.state
}

// HealthIntervals returns the check's interval and timeout with defaults.
func HealthIntervals(c api.HealthCheck) (interval, timeout time.Duration) {
	interval, timeout = c.Interval.D(), c.Timeout.D()
	if interval <= 0 {
		interval = DefaultHealthInterval
	}
	if timeout <= 0 {
		timeout = DefaultHealthTimeout
	}
	return interval, timeout
}

// Probe runs one health check against a task. HTTP and TCP checks go to
// the task's own address; exec checks run inside the container through ex.
// A nil error means healthy; a probe that outlasts the check's timeout on
// clk fails.
func Probe(ctx context.Context, clk Clock, c api.HealthCheck, addr netip.Addr, ex Execer) error {
	_, timeout := HealthIntervals(c)
	pctx, cancel := withTimeout(ctx, clk, timeout)
	defer cancel()
	err := probe(pctx, c, addr, ex)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(pctx), context.DeadlineExceeded) {
		return fmt.Errorf("%s health check: no answer within %s: %w", c.Kind, timeout, context.DeadlineExceeded)
	}
	return err
}

func probe(ctx context.Context, c api.HealthCheck, addr netip.Addr, ex Execer) error {
	port := c.Port
	if port == 0 {
		port = DefaultHealthPort
	}
	switch c.Kind {
	case api.HealthExec:
		if ex == nil {
			return fmt.Errorf("exec health check: executor cannot exec")
		}
		if len(c.Command) == 0 {
			return fmt.Errorf("exec health check: no command")
		}
		code, err := ex.Exec(ctx, c.Command)
		if err != nil {
			return fmt.Errorf("exec health check: %w", err)
		}
		if code != 0 {
			return fmt.Errorf("exec health check: exit code %d", code)
		}
		return nil
	case api.HealthHTTP, api.HealthTCP:
		if !addr.IsValid() {
			return fmt.Errorf("%s health check: task has no address", c.Kind)
		}
		hp := net.JoinHostPort(addr.String(), strconv.Itoa(int(port)))
		if c.Kind == api.HealthTCP {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "tcp", hp)
			if err != nil {
				return fmt.Errorf("tcp health check: %w", err)
			}
			return conn.Close()
		}
		p := c.Path
		if p == "" {
			p = "/"
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+hp+p, nil)
		if err != nil {
			return fmt.Errorf("http health check: %w", err)
		}
		// No keep-alive: a probe must not hold connections to the task.
		tr := &http.Transport{DisableKeepAlives: true, Proxy: nil}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			return fmt.Errorf("http health check: %w", err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("http health check: status %d", resp.StatusCode)
		}
		return nil
	default:
		return fmt.Errorf("health check: unknown kind %q", c.Kind)
	}
}
