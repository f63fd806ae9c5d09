// Package client is the typed Go client of the manager API (v1): every route
// the apiserver serves has one method here. The CLI uses it over the
// root-only unix socket or over mTLS; the node agent uses it with its node
// certificate.
//
// It owns failover between managers: a call that cannot reach one manager
// (connection refused, reset, timeout before an answer) is tried on the next
// one; an answer from a manager, even an error, is final. Errors carry the
// server's message.
//
// It imports only the standard library and controlplane/api, so the agent on
// a worker and the CLI stay small; it must not import the server side
// (apiserver, store, raftnode).
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Config says how to reach the managers.
type Config struct {
	// Addrs are manager API addresses (host:port), tried in order.
	Addrs []string
	// TLS holds the client certificate (usually served from a CertStore so a
	// renewed certificate is picked up) and the cluster CA pool. A joiner
	// without a certificate passes a config with only the pool.
	TLS *tls.Config
	// Socket, when set, is the manager's unix socket; Addrs and TLS are unused
	// and the caller is treated as admin by the server.
	Socket string
	// Timeout bounds each call except blocking queries and image transfers,
	// which are bounded by their context. Default 30s.
	Timeout time.Duration
	// Transport overrides the HTTP transport (tests).
	Transport http.RoundTripper
	// PingAfter is how long a connection to a manager may stay silent
	// before the client pings it; a ping unanswered for as long again
	// closes it, failing the calls on it, so the next call dials anew.
	// Default DefaultPingAfter.
	PingAfter time.Duration
}

// DefaultPingAfter is Config.PingAfter's default.
//
// Every call to a manager shares one HTTP/2 connection. When the link
// drops packets without a reset (a cut WAN link, a partition), that
// connection's TCP retransmissions back off exponentially: a node whose
// link came back after 8 s was heard again after 13.5 s, and after a cut
// of a minute it would be after two, while the managers count it down and
// replace its tasks. Health checks close the silent connection within
// twice this, so calls after the cut dial afresh and get through as soon
// as the link does. Heartbeats keep a working connection busy, so the
// pings are sent only when it has gone quiet.
const DefaultPingAfter = 3 * time.Second

// Client calls the manager API. It is safe for concurrent use.
type Client struct {
	hc *http.Client
	// beat carries heartbeats (Register), each on an HTTP/1.1 connection
	// of its own, apart from hc's one HTTP/2 connection. On a lossy link
	// a TCP connection stalls in retransmission now and then, for seconds
	// as its timeout backs off; on the shared connection that stalled
	// every heartbeat in flight at once, and the managers counted the
	// node down (1 flap in 30 s of 25 % loss in TestEdgeAutonomy). Apart,
	// a stalled one holds up only itself.
	beat    *http.Client
	scheme  string
	timeout time.Duration
	stale   bool
	st      *addrState
}

// addrState is shared between a Client and the copies Stale makes.
type addrState struct {
	mu    sync.Mutex
	addrs []string
	cur   int
	// answered: the manager at cur answered a call (it is not merely the
	// first of a list nobody has tried yet).
	answered bool
}

// New builds a client. It does not dial.
func New(cfg Config) (*Client, error) {
	c := &Client{timeout: cfg.Timeout, st: &addrState{}}
	if c.timeout <= 0 {
		c.timeout = 30 * time.Second
	}
	tr := cfg.Transport
	switch {
	case cfg.Socket != "":
		c.scheme = "http"
		c.st.addrs = []string{"unix"}
		if tr == nil {
			sock := cfg.Socket
			tr = &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, "unix", sock)
				},
				MaxIdleConns: 4,
			}
		}
	default:
		if len(cfg.Addrs) == 0 {
			return nil, errors.New("client: no manager address given")
		}
		if cfg.TLS == nil && cfg.Transport == nil {
			return nil, errors.New("client: a TLS configuration is required to reach managers over the network")
		}
		c.scheme = "https"
		c.st.addrs = append([]string(nil), cfg.Addrs...)
		if tr == nil {
			ping := cfg.PingAfter
			if ping <= 0 {
				ping = DefaultPingAfter
			}
			shared := &http.Transport{
				HTTP2:               &http.HTTP2Config{SendPingTimeout: ping, PingTimeout: ping},
				TLSClientConfig:     cfg.TLS.Clone(),
				ForceAttemptHTTP2:   true,
				TLSHandshakeTimeout: 10 * time.Second,
				DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
				MaxIdleConnsPerHost: 4,
				IdleConnTimeout:     90 * time.Second,
			}
			// The heartbeats' transport is the same without HTTP/2.
			own := shared.Clone()
			own.ForceAttemptHTTP2, own.HTTP2 = false, nil
			own.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			own.TLSClientConfig.NextProtos = []string{"http/1.1"}
			tr, c.beat = shared, &http.Client{Transport: own}
		}
	}
	c.hc = &http.Client{Transport: tr}
	if c.beat == nil {
		c.beat = c.hc // a unix socket, or a transport given by a test
	}
	return c, nil
}

// Stale returns a client whose reads are served from the answering manager's
// local view, which may lag the leader but works without quorum.
func (c *Client) Stale() *Client {
	cp := *c
	cp.stale = true
	return &cp
}

// SetAddrs replaces the manager list (the agent learns it from its
// assignments). The manager that answered last stays first if still listed;
// before any answer the new list's order is the order of preference.
func (c *Client) SetAddrs(addrs []string) {
	if len(addrs) == 0 || c.scheme != "https" {
		return
	}
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	cur := c.st.addrs[c.st.cur]
	c.st.addrs = append([]string(nil), addrs...)
	c.st.cur = 0
	if !c.st.answered {
		return
	}
	kept := false
	for i, a := range c.st.addrs {
		if a == cur {
			c.st.cur, kept = i, true
		}
	}
	c.st.answered = kept
}

// Addrs returns the manager list, starting with the one in use.
func (c *Client) Addrs() []string {
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	out := make([]string, 0, len(c.st.addrs))
	for i := range c.st.addrs {
		out = append(out, c.st.addrs[(c.st.cur+i)%len(c.st.addrs)])
	}
	return out
}

// APIError is an answer from a manager with a non-2xx status.
type APIError struct {
	Status  int
	Message string
	// Leader is the leader's API address when the server named it.
	Leader string
}

func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("manager answered %d %s", e.Status, http.StatusText(e.Status))
	}
	return e.Message
}

// StatusOf returns the HTTP status of an APIError anywhere in err's chain, or 0.
func StatusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// IsNotFound reports whether the manager said the object does not exist.
func IsNotFound(err error) bool { return StatusOf(err) == http.StatusNotFound }

// UnreachableError says no manager could be reached; it wraps the last error.
type UnreachableError struct {
	Addrs []string
	Err   error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("no manager reachable (tried %s): %v", strings.Join(e.Addrs, ", "), e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// request is one call, reusable across failover attempts.
type request struct {
	method string
	path   string
	query  url.Values
	body   []byte
	// stream is sent instead of body; it is rewound before each attempt.
	stream      io.ReadSeeker
	contentType string
	// noTimeout leaves the deadline to ctx (blocking queries, transfers).
	noTimeout bool
	header    http.Header
	// beat sends it over the heartbeat connections (Client.beat).
	beat bool
}

// do sends r to the managers in turn and returns the first answer.
func (c *Client) do(ctx context.Context, r request) (*http.Response, error) {
	if r.query == nil {
		r.query = url.Values{}
	}
	if c.stale && r.method == http.MethodGet {
		r.query.Set("stale", "true")
	}
	var cancel context.CancelFunc = func() {}
	if !r.noTimeout {
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
	}
	addrs := c.Addrs()
	var lastErr error
	for _, addr := range addrs {
		resp, err := c.try(ctx, addr, r)
		if err == nil {
			c.markGood(addr)
			// The caller closes the body; cancel when it does.
			resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
			return resp, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	cancel()
	if ctx.Err() != nil && lastErr == nil {
		lastErr = ctx.Err()
	}
	return nil, &UnreachableError{Addrs: addrs, Err: lastErr}
}

func (c *Client) try(ctx context.Context, addr string, r request) (*http.Response, error) {
	u := url.URL{Scheme: c.scheme, Host: addr, Path: r.path, RawQuery: r.query.Encode()}
	var body io.Reader
	if r.stream != nil {
		if _, err := r.stream.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("rewind upload: %w", err)
		}
		body = io.NopCloser(r.stream)
	} else if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	req.Header.Set("Accept", "application/json")
	if r.beat {
		return c.beat.Do(req)
	}
	return c.hc.Do(req)
}

func (c *Client) markGood(addr string) {
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	for i, a := range c.st.addrs {
		if a == addr {
			c.st.cur, c.st.answered = i, true
		}
	}
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// call sends in (JSON) and decodes the answer into out (when non-nil).
func (c *Client) call(ctx context.Context, method, path string, query url.Values, in, out any) error {
	return c.send(ctx, request{method: method, path: path, query: query}, in, out)
}

// send is call for a request with more to it than a method, path and query.
func (c *Client) send(ctx context.Context, r request, in, out any) error {
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		r.body, r.contentType = b, "application/json"
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decode(resp, out)
}

// decode turns a non-2xx answer into an APIError and a 2xx one into out.
func decode(resp *http.Response, out any) error {
	if resp.StatusCode/100 != 2 {
		return readError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode answer to %s %s: %w", resp.Request.Method, resp.Request.URL.Path, err)
	}
	return nil
}

func readError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e Error
	if json.Unmarshal(b, &e) == nil && e.Message != "" {
		return &APIError{Status: resp.StatusCode, Message: e.Message, Leader: e.Leader}
	}
	return &APIError{Status: resp.StatusCode, Message: strings.TrimSpace(string(b))}
}
