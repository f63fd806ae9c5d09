//go:build linux

package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/warrenhq/warren/controlplane/client"
)

// The prober calls service ls / inspect / create in a loop while the
// cluster is busy, like operators and CI pipelines would, from a process
// of its own: inside this one its goroutines wait for CPU behind the
// simulated nodes' thousands, and the latency it measured was mostly that
// wait (p95 at the client five times the leader's own timing). A real CLI
// runs on another machine; a process of its own on this one at least gets
// the kernel's share of the CPU rather than the Go scheduler's.

// ProberEnv names the variable that makes the test binary a prober: its
// value is the prober's configuration (proberConfig, JSON).
const ProberEnv = "WARREN_SIM_PROBER"

// proberOps are the calls timed, in the table's order.
var proberOps = []string{"service ls", "service inspect", "service create"}

type proberConfig struct {
	AdminDir string   `json:"admin_dir"`
	Addrs    []string `json:"addrs"`
	// Inspect is the service the inspect calls read; Prefix names the
	// services the create calls make (zero replicas: the probe measures the
	// API, not the scheduler).
	Inspect string `json:"inspect"`
	Prefix  string `json:"prefix"`
}

// proberResult is what a prober measured for one call.
type proberResult struct {
	Samples []time.Duration `json:"samples"`
	Errors  int             `json:"errors"`
	LastErr string          `json:"last_error,omitempty"`
}

// result is what l holds, to send.
func (l *Latencies) result() proberResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := proberResult{Samples: l.xs, Errors: l.errs}
	if l.lastErr != nil {
		r.LastErr = l.lastErr.Error()
	}
	return r
}

// merge adds what a prober sent to l.
func (l *Latencies) merge(r proberResult) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.xs = append(l.xs, r.Samples...)
	l.errs += r.Errors
	if r.LastErr != "" {
		l.lastErr = errors.New(r.LastErr)
	}
}

// ProberMain is the prober process: it probes until its standard input
// closes, then writes what it measured to standard output as JSON.
func ProberMain() int {
	var cfg proberConfig
	if err := json.Unmarshal([]byte(os.Getenv(ProberEnv)), &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "prober: %s: %v\n", ProberEnv, err)
		return 2
	}
	admin, err := adminClient(cfg.AdminDir, cfg.Addrs)
	if err != nil {
		fmt.Fprintf(os.Stderr, "prober: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel() }()
	lat := probe(ctx, admin, cfg)
	out := map[string]proberResult{}
	for op, l := range lat {
		out[op] = l.result()
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintf(os.Stderr, "prober: %v\n", err)
		return 1
	}
	return 0
}

// probe runs the three loops until ctx ends, each call followed by a
// 20 ms pause.
func probe(ctx context.Context, admin *client.Client, cfg proberConfig) map[string]*Latencies {
	lat := map[string]*Latencies{}
	for _, op := range proberOps {
		lat[op] = &Latencies{}
	}
	time0 := func(op string, f func() error) {
		t := time.Now()
		err := f()
		if ctx.Err() == nil {
			lat[op].Add(time.Since(t), err)
		}
	}
	var wg sync.WaitGroup
	for _, op := range proberOps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ctx.Err() == nil; k++ {
				switch op {
				case "service ls":
					time0(op, func() error { _, err := admin.Services(ctx); return err })
				case "service inspect":
					time0(op, func() error { _, err := admin.Service(ctx, cfg.Inspect); return err })
				case "service create":
					time0(op, func() error {
						_, err := admin.CreateService(ctx, spec(fmt.Sprintf("%s%d", cfg.Prefix, k), 0, "v1"))
						return err
					})
				}
				select {
				case <-ctx.Done():
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
	}
	wg.Wait()
	return lat
}

// startProber starts a prober process against c; stop ends it and adds
// what it measured to into.
func startProber(c *Cluster, inspect, prefix string, into map[string]*Latencies) (stop func() error, err error) {
	cfg, err := json.Marshal(proberConfig{AdminDir: c.AdminDir, Addrs: c.APIAddrs(), Inspect: inspect, Prefix: prefix})
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), ProberEnv+"="+string(cfg))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return func() error {
		_ = stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var err error
		select {
		case err = <-done:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			err = errors.Join(errors.New("prober did not stop within a minute of being told"), <-done)
		}
		if err != nil {
			return fmt.Errorf("prober: %w: %s", err, tail(stderr.Bytes(), 2000))
		}
		var out map[string]proberResult
		if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
			return fmt.Errorf("prober's results: %w", err)
		}
		for op, res := range out {
			if l := into[op]; l != nil {
				l.merge(res)
			}
		}
		return nil
	}, nil
}
