//go:build linux

package reliability

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/ca"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/kernel-tests/ktest"
)

// apiClient talks HTTPS to the managers' API as the administrator, dialling
// from a client netns on the switch. It is
// raw HTTP rather than controlplane/client so every answer's status and
// consistency header are seen: the history must tell a definite failure
// from an unknown outcome.
type apiClient struct {
	hc    *http.Client
	addrs []string
}

func newAPIClient(t *testing.T, c *cluster) *apiClient {
	t.Helper()
	dir := filepath.Join(c.hosts[0].dataDir, "admin")
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "admin.crt"), filepath.Join(dir, "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA in admin/ca.crt")
	}
	// The clients live on a host of their own on the switch, so cutting
	// off or killing any manager's host never cuts off the clients.
	cl := newNetns(t, "cl")
	port := ifName("wrc")
	ktest.Run(t, "ip", "-n", c.sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", cl)
	ktest.Run(t, "ip", "-n", c.sw, "link", "set", port, "master", "br0", "up")
	ktest.Run(t, "ip", "-n", cl, "addr", "add", c.prefix+"250/24", "dev", "eth0")
	ktest.Run(t, "ip", "-n", cl, "link", "set", "eth0", "up")
	nsPath := "/run/netns/" + cl
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: ca.ManagerServerName},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var conn net.Conn
			err := ns.WithNetNSPath(nsPath, func(ns.NetNS) error {
				var err error
				conn, err = (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		},
		MaxIdleConnsPerHost: 8,
	}
	t.Cleanup(tr.CloseIdleConnections)
	a := &apiClient{hc: &http.Client{Transport: tr}}
	for _, h := range c.hosts {
		a.addrs = append(a.addrs, net.JoinHostPort(h.ip, "2377"))
	}
	return a
}

type outcome int

const (
	ok      outcome = iota
	failed          // definitely not applied (4xx)
	unknown         // may have been applied, now or later (timeout, 503, connection lost)
)

// write sets labels on a node through one manager; note says what came
// back (status and raft index, or the transport error) for the
// visualisation.
func (a *apiClient) write(addr, nodeID string, labels map[string]string) (outcome, string) {
	body, _ := json.Marshal(client.NodeUpdate{LabelAdd: labels})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+"/v1/nodes/"+nodeID+"/update", bytes.NewReader(body))
	resp, err := a.hc.Do(req)
	if err != nil {
		// A connection never made (the manager is dead) sent nothing;
		// anything later may have reached raft.
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return failed, "dial: " + err.Error()
		}
		return unknown, err.Error()
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	note := fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(text))
	switch {
	case resp.StatusCode == http.StatusOK:
		return ok, note
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return failed, note
	}
	return unknown, note
}

// read returns a node's labels through one manager; ok is false for any
// answer that is not a linearizable read (an error, or one the manager
// marked stale because it could not confirm its leadership).
func (a *apiClient) read(addr, nodeID string) (map[string]string, bool) {
	l, good, _, _, _ := a.readCode(addr, nodeID)
	return l, good
}

// readCode is read, and also returns the status and the store index the
// answer came from (Warren-Index). Every node read here exists for the
// whole run, so a 404 is a manager answering from a store that has not
// caught up.
func (a *apiClient) readCode(addr, nodeID string) (labels map[string]string, good bool, status int, index, why string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/v1/nodes/"+nodeID, nil)
	resp, err := a.hc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			return nil, false, 0, "", op.Op
		}
		return nil, false, 0, "", "transport"
	}
	defer resp.Body.Close()
	index = resp.Header.Get(client.HeaderIndex)
	switch {
	case resp.StatusCode != http.StatusOK:
		return nil, false, resp.StatusCode, index, strconv.Itoa(resp.StatusCode)
	case resp.Header.Get(client.HeaderConsistency) == "stale":
		return nil, false, resp.StatusCode, index, "stale"
	}
	var n api.Node
	if err := json.NewDecoder(resp.Body).Decode(&n); err != nil {
		return nil, false, 0, index, "decode"
	}
	return n.Spec.Labels, true, resp.StatusCode, index, ""
}

// workload runs writers and readers against the managers until stop. Each
// writer owns one register (a label on one node) and also leaves a label
// per acknowledged write, the ack set checked after the faults.
type workload struct {
	a        *apiClient
	nodes    []string // register i lives on nodes[i%len]
	base     time.Time
	mu       sync.Mutex
	history  []porcupine.Operation
	acked    map[string]string // ack label -> node ID
	counts   map[string]int
	stop     chan struct{}
	haltOnce sync.Once
	wg       sync.WaitGroup
}

type regOp struct {
	write      bool
	key, value string
	// via and note are for the visualisation only: the manager called and
	// what it answered.
	via, note string
}

// register names writer i's label. Every workload has registers of its
// own: the model starts each register empty, and a key an earlier workload
// on the same nodes wrote would start with that workload's last value (the
// "Illegal" histories of T1 after T2, and of T3 after T1, were exactly
// that first read).
func register(tag string, i int) string { return fmt.Sprintf("%s-r%d", tag, i) }

func newWorkload(a *apiClient, nodes []string) *workload {
	return &workload{a: a, nodes: nodes, base: time.Now(), acked: map[string]string{}, counts: map[string]int{}, stop: make(chan struct{})}
}

func (w *workload) clock() int64 { return int64(time.Since(w.base)) }

func (w *workload) ackCount() int { w.mu.Lock(); defer w.mu.Unlock(); return len(w.acked) }

func (w *workload) count(k string) { w.mu.Lock(); w.counts[k]++; w.mu.Unlock() }

func (w *workload) start(writers, readers int, tag string) {
	for i := 0; i < writers; i++ {
		w.wg.Add(1)
		go func(i int) {
			defer w.wg.Done()
			node, key := w.nodes[i%len(w.nodes)], register(tag, i)
			for seq := 0; ; seq++ {
				select {
				case <-w.stop:
					return
				default:
				}
				val := fmt.Sprintf("%s-w%d-%05d", tag, i, seq)
				addr := w.a.addrs[(i+seq)%len(w.a.addrs)]
				call := w.clock()
				res, note := w.a.write(addr, node, map[string]string{key: val, "a-" + val: "1"})
				op := porcupine.Operation{ClientId: i, Input: regOp{write: true, key: key, value: val, via: addr, note: note}, Call: call, Return: w.clock()}
				switch res {
				case ok:
					w.mu.Lock()
					w.acked["a-"+val] = node
					w.history = append(w.history, op)
					w.mu.Unlock()
					w.count("acked")
				case unknown:
					// It may take effect at any later time: the model must allow it.
					op.Return = math.MaxInt64
					w.mu.Lock()
					w.history = append(w.history, op)
					w.mu.Unlock()
					w.count("unknown")
				case failed:
					w.count("refused")
					why, _, _ := strings.Cut(note, ":")
					w.count("refused " + strings.Fields(why + " ?")[0])
				}
				time.Sleep(30 * time.Millisecond)
			}
		}(i)
	}
	for r := 0; r < readers; r++ {
		w.wg.Add(1)
		go func(r int) {
			defer w.wg.Done()
			for seq := 0; ; seq++ {
				select {
				case <-w.stop:
					return
				default:
				}
				reg := seq % writers
				node, key := w.nodes[reg%len(w.nodes)], register(tag, reg)
				addr := w.a.addrs[(r+seq)%len(w.a.addrs)]
				call := w.clock()
				labels, good, code, index, why := w.a.readCode(addr, node)
				ret := w.clock()
				if code == http.StatusNotFound {
					w.count("reads-404")
				}
				if good {
					w.mu.Lock()
					w.history = append(w.history, porcupine.Operation{ClientId: 100 + r, Input: regOp{key: key, via: addr, note: "index " + index}, Output: labels[key], Call: call, Return: ret})
					w.mu.Unlock()
					w.count("reads")
				} else {
					w.count("reads-failed")
					w.count("reads-failed " + why)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}(r)
	}
}

// halt stops the clients; a failed test's clean-up may call it again.
func (w *workload) halt() {
	w.haltOnce.Do(func() { close(w.stop) })
	w.wg.Wait()
}

// waitAcks waits until n more writes than now are acknowledged.
func (w *workload) waitAcks(t *testing.T, n int, within time.Duration) {
	t.Helper()
	want := w.ackCount() + n
	eventually(t, fmt.Sprintf("%d acknowledged writes", want), within, func() error {
		if got := w.ackCount(); got < want {
			return fmt.Errorf("%d acknowledged", got)
		}
		return nil
	})
}

// lost returns the acknowledged writes the cluster does not hold, read
// linearizably through any manager.
func (w *workload) lost(t *testing.T) []string {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	labels := map[string]map[string]string{}
	for _, n := range w.nodes {
		eventually(t, "a linearizable read of node "+short(n), 60*time.Second, func() error {
			for _, addr := range w.a.addrs {
				if l, good := w.a.read(addr, n); good {
					labels[n] = l
					return nil
				}
			}
			return fmt.Errorf("no manager answered")
		})
	}
	var out []string
	for k, n := range w.acked {
		if labels[n][k] != "1" {
			out = append(out, k)
		}
	}
	return out
}

// settleUnknown returns the history with the unknown outcomes made as
// tight as the history itself proves, which keeps the check exact and its
// search small (hundreds of writes pending forever make porcupine time
// out). Every value is written once, so:
//   - an unknown write no read returned can always be linearized after
//     every other operation (its return is infinite), where it changes
//     nothing: leaving it out gives the same verdict;
//   - an unknown write some read returned must take effect before that
//     read, so it returned by then: its return becomes the earliest such
//     read's (never before its own call, so a read that saw the value
//     before it was written stays illegal).
func settleUnknown(hist []porcupine.Operation) []porcupine.Operation {
	firstSeen := map[string]int64{} // key + value -> earliest return of a read that saw it
	for _, op := range hist {
		in := op.Input.(regOp)
		if in.write {
			continue
		}
		k := in.key + "\x00" + op.Output.(string)
		if r, ok := firstSeen[k]; !ok || op.Return < r {
			firstSeen[k] = op.Return
		}
	}
	out := make([]porcupine.Operation, 0, len(hist))
	for _, op := range hist {
		in := op.Input.(regOp)
		if in.write && op.Return == math.MaxInt64 {
			r, seen := firstSeen[in.key+"\x00"+in.value]
			if !seen {
				continue
			}
			op.Return = max(r, op.Call+1)
		}
		out = append(out, op)
	}
	return out
}

var registerModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(regOp).key
			if _, seen := byKey[k]; !seen {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() interface{} { return "" },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		in := input.(regOp)
		if in.write {
			return true, in.value
		}
		return output.(string) == state.(string), state
	},
	DescribeOperation: func(input, output interface{}) string {
		in := input.(regOp)
		if in.write {
			return fmt.Sprintf("put %s=%s via %s: %s", in.key, in.value, in.via, in.note)
		}
		return fmt.Sprintf("get %s -> %v via %s, %s", in.key, output, in.via, in.note)
	},
}
