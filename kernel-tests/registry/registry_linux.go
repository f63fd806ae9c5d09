package registrytest

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/crypto/bcrypt"

	"github.com/warrenhq/warren/kernel-tests/ktest"
)

// Options configure a registry started by Start.
type Options struct {
	// NetNS is the network namespace (a name under /run/netns) the registry
	// listens in; the caller created it and gave it IP.
	NetNS string
	IP    string
	// Port defaults to 5000.
	Port int
	// Plain serves HTTP without TLS (for the insecure-registry case).
	Plain bool
	// NoAuth turns htpasswd auth off (a mirror that needs no login).
	NoAuth bool
	// Dir holds the CA, certificates, htpasswd, config, data and log;
	// t.TempDir() when empty.
	Dir string
}

// Registry is a running docker-registry.
type Registry struct {
	t        testing.TB
	o        Options
	Dir      string
	Host     string // ip:port, the name images are pushed under
	User     string
	Password string
	CAFile   string // PEM of the CA that signed the server certificate
	CAPEM    []byte
	LogPath  string
	config   string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start writes the registry's CA, certificate, htpasswd and config, starts
// docker-registry in its own process group inside o.NetNS and waits until
// /v2/ answers. It is stopped in t.Cleanup.
func Start(t testing.TB, o Options) *Registry {
	t.Helper()
	ktest.Root(t)
	ktest.Binary(t, "nsenter")
	if _, err := exec.LookPath("docker-registry"); err != nil {
		t.Fatalf("kernel test requirement missing: docker-registry not on PATH (apt-get install --no-install-recommends docker-registry; make deps does)")
	}
	if o.Port == 0 {
		o.Port = 5000
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	r := &Registry{t: t, o: o, Dir: o.Dir, Host: net.JoinHostPort(o.IP, fmt.Sprint(o.Port)),
		User: "warren", Password: "s3cret-" + fmt.Sprint(os.Getpid()),
		LogPath: filepath.Join(o.Dir, "registry.log"), config: filepath.Join(o.Dir, "config.yml")}
	if err := os.MkdirAll(filepath.Join(o.Dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	var tlsBlock, authBlock string
	if !o.Plain {
		cert, key, err := r.writePKI()
		if err != nil {
			t.Fatalf("registry pki: %v", err)
		}
		tlsBlock = fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", cert, key)
	}
	if !o.NoAuth {
		hash, err := bcrypt.GenerateFromPassword([]byte(r.Password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		htp := filepath.Join(o.Dir, "htpasswd")
		if err := os.WriteFile(htp, []byte(r.User+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		authBlock = fmt.Sprintf("auth:\n  htpasswd:\n    realm: warren-test\n    path: %s\n", htp)
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
%s%s`, filepath.Join(o.Dir, "data"), r.Host, tlsBlock, authBlock)
	if err := os.WriteFile(r.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// Scheme is https, or http for a plain registry.
func (r *Registry) Scheme() string {
	if r.o.Plain {
		return "http"
	}
	return "https"
}

// URL is the registry's base URL (for --registry-mirror).
func (r *Registry) URL() string { return r.Scheme() + "://" + r.Host }

// Start (re)starts the registry process on its existing data and waits
// until it answers.
func (r *Registry) Start() {
	t := r.t
	t.Helper()
	r.mu.Lock()
	if r.cmd != nil {
		r.mu.Unlock()
		t.Fatalf("registry %s already running", r.Host)
	}
	logf, err := os.OpenFile(r.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		r.mu.Unlock()
		t.Fatal(err)
	}
	cmd := exec.Command("nsenter", "--net=/run/netns/"+r.o.NetNS, "--", "docker-registry", "serve", r.config)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		r.mu.Unlock()
		t.Fatalf("start docker-registry: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	r.cmd, r.exited = cmd, exited
	r.mu.Unlock()

	c := r.HTTPClient()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := c.Get(r.URL() + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return
			}
		}
		select {
		case <-exited:
			t.Fatalf("docker-registry exited at start:\n%s", r.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry %s not answering /v2/ after 20s (last error %v):\n%s", r.Host, err, r.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop kills the registry's process group and waits for it.
func (r *Registry) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		r.t.Errorf("docker-registry pid %d did not exit after SIGKILL", r.cmd.Process.Pid)
	}
	r.cmd = nil
}

// Log is the registry's log so far.
func (r *Registry) Log() string {
	b, _ := os.ReadFile(r.LogPath)
	return string(b)
}

// Requests counts the access-log lines of requests whose path contains
// substr (e.g. "/v2/demo/manifests/"), and how many of those were answered
// with status (0: any).
func (r *Registry) Requests(substr string, status int) int {
	f, err := os.Open(r.LogPath)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		// The access log is Apache combined format: `... "GET /v2/... HTTP/1.1" 401 ...`.
		i := strings.Index(l, "\"GET ")
		if i < 0 {
			i = strings.Index(l, "\"HEAD ")
		}
		if i < 0 {
			continue
		}
		rest := l[i:]
		q := strings.Index(rest[1:], "\"")
		if q < 0 {
			continue
		}
		req, after := rest[:q+2], strings.TrimSpace(rest[q+2:])
		if !strings.Contains(req, substr) {
			continue
		}
		if status != 0 && !strings.HasPrefix(after, fmt.Sprint(status)+" ") {
			continue
		}
		n++
	}
	return n
}

// Dial connects to addr from inside the registry's namespace: the test
// process stays in the root namespace, its sockets to the registry do not.
func (r *Registry) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := ns.WithNetNSPath("/run/netns/"+r.o.NetNS, func(ns.NetNS) error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Transport is an HTTP transport that trusts the test CA and dials inside
// the registry's namespace.
func (r *Registry) Transport() *http.Transport {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(r.CAPEM)
	return &http.Transport{DialContext: r.Dial, TLSClientConfig: &tls.Config{RootCAs: pool},
		ResponseHeaderTimeout: 30 * time.Second, DisableKeepAlives: true}
}

// HTTPClient is a client on Transport (readiness checks, not pushes).
func (r *Registry) HTTPClient() *http.Client {
	return &http.Client{Transport: r.Transport(), Timeout: 5 * time.Second}
}

// writePKI makes a CA and a server certificate for the registry's IP.
func (r *Registry) writePKI() (certPath, keyPath string, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "warren registry test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return "", "", err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return "", "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	ip := net.ParseIP(r.o.IP)
	if ip == nil {
		return "", "", errors.New("registry IP " + r.o.IP + " is not an address")
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: r.o.IP},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{ip}, DNSNames: []string{"registry.test"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", err
	}
	r.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	r.CAFile = filepath.Join(r.Dir, "ca.pem")
	certPath, keyPath = filepath.Join(r.Dir, "server.pem"), filepath.Join(r.Dir, "server.key")
	for p, b := range map[string][]byte{
		r.CAFile: r.CAPEM,
		certPath: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPath:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return "", "", err
		}
	}
	return certPath, keyPath, nil
}
