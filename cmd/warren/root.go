package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
)

// version is set by the linker (make build).
var version = "dev"

// globals are the flags every command shares.
type globals struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	host      string // manager API address
	dataDir   string
	certDir   string
	output    string
	logLevel  string
	logFormat string
	stale     bool
}

// envDuration is envOr for durations; a value that does not parse is
// ignored for the default, as flags then show it.
func envDuration(key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(key)); err == nil && d > 0 {
		return d
	}
	return def
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func newRootCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "warren",
		Short: "Warren: a container orchestrator for edge sites and small teams",
		Long: `Warren runs containers on a cluster of machines, like Docker Swarm: start a cluster with
'warren cluster init', add machines with the join command it prints, and run services with
'warren service create'. Load balancing and canary / blue-green traffic splitting happen in the
kernel (eBPF), over an encrypted WireGuard mesh. 'wrn' is the same program.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := validFormat(g.output); err != nil {
				return err
			}
			_, err := newLogger(g.logLevel, g.logFormat, io.Discard)
			return err
		},
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVarP(&g.host, "host", "H", envOr("WARREN_HOST", ""), "manager API address host:port (default: this node's local socket) [$WARREN_HOST]")
	pf.StringVar(&g.dataDir, "data-dir", envOr("WARREN_DATA_DIR", "/var/lib/warren"), "state directory of this node [$WARREN_DATA_DIR]")
	pf.StringVar(&g.certDir, "cert-dir", envOr("WARREN_CERT_DIR", ""), "administrator credentials (ca.crt, admin.crt, admin.key) (default <data-dir>/admin) [$WARREN_CERT_DIR]")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table, json or yaml")
	pf.StringVar(&g.logLevel, "log-level", envOr("WARREN_LOG_LEVEL", "info"), "log level: debug, info, warn or error [$WARREN_LOG_LEVEL]")
	pf.StringVar(&g.logFormat, "log-format", envOr("WARREN_LOG_FORMAT", "json"), "log format: json or console [$WARREN_LOG_FORMAT]")
	pf.BoolVar(&g.stale, "stale", false, "read from the manager you reach even if it is behind (works without quorum)")

	root.AddCommand(
		newClusterCmd(g),
		newManagerCmd(g),
		newNodeCmd(g),
		newServiceCmd(g),
		newApplyCmd(g),
		newStackCmd(g),
		newImageCmd(g),
		newSecretCmd(g, api.KindSecret),
		newSecretCmd(g, api.KindConfig),
		newVolumeCmd(g),
		newRegistryCmd(g),
		newVersionCmd(g),
	)
	return root
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show the warren version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintf(g.stdout, "warren %s\n", version)
			return nil
		},
	}
}

func (g *globals) printer() printer { return printer{format: g.output, w: g.stdout} }

func (g *globals) adminDir() string {
	if g.certDir != "" {
		return g.certDir
	}
	return filepath.Join(g.dataDir, "admin")
}

// socketPath is the root-only unix socket of the node whose data dir this is.
func socketPath(dataDir string) string { return filepath.Join(dataDir, "warren.sock") }

// client connects the way an operator expects: the local socket when this
// machine runs a manager and no --host was given, else mTLS with the
// administrator certificate written by `cluster init`.
func (g *globals) client() (*client.Client, error) {
	if g.host == "" {
		sock := socketPath(g.dataDir)
		if _, err := os.Stat(sock); err == nil {
			c, err := client.New(client.Config{Socket: sock})
			if err != nil {
				return nil, err
			}
			return g.maybeStale(c), nil
		}
	}
	dir := g.adminDir()
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		if g.host == "" {
			return nil, fmt.Errorf("no manager to talk to: %s does not exist (is warren running on this machine?) and no --host was given", socketPath(g.dataDir))
		}
		return nil, fmt.Errorf("read administrator credentials: %w (copy %s from a manager or pass --cert-dir)", err, dir)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "admin.crt"), filepath.Join(dir, "admin.key"))
	if err != nil {
		return nil, fmt.Errorf("read administrator certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s: no CA certificate in it", filepath.Join(dir, "ca.crt"))
	}
	addrs := []string{g.host}
	if g.host == "" {
		b, err := os.ReadFile(filepath.Join(dir, "managers"))
		if err != nil {
			return nil, fmt.Errorf("no --host given and %s lists no managers", filepath.Join(dir, "managers"))
		}
		addrs = strings.Fields(string(b))
	}
	c, err := client.New(client.Config{
		Addrs: addrs,
		TLS: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			RootCAs:      pool,
			Certificates: []tls.Certificate{cert},
			ServerName:   "warren-manager",
		},
	})
	if err != nil {
		return nil, err
	}
	return g.maybeStale(c), nil
}

func (g *globals) maybeStale(c *client.Client) *client.Client {
	if g.stale {
		return c.Stale()
	}
	return c
}

func ctxTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
