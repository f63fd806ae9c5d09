package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
)

func newRegistryCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "registry",
		Short: "Credentials for image registries, kept encrypted in the cluster",
		Long: `A login is kept sealed like a secret and reaches only the nodes that pull an image from that
host (or one of its mirrors) for a task. No command shows it again: not inspect, not logs, not the
audit log. TLS, plain-HTTP hosts and mirrors are cluster settings: warren cluster update --registry-*.`,
	}
	cmd.AddCommand(newRegistryLoginCmd(g), newRegistryLogoutCmd(g), newRegistryLsCmd(g))
	return cmd
}

func newRegistryLoginCmd(g *globals) *cobra.Command {
	var user string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login [OPTIONS] HOST",
		Short: "Store the credential nodes use to pull from HOST (docker.io, ghcr.io, host:port)",
		Example: `  echo "$TOKEN" | warren registry login ghcr.io -u me --password-stdin
  warren registry login registry.lan:5000 -u deploy      # asks for the password`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if user == "" {
				return fmt.Errorf("registry login %s: --username is required", args[0])
			}
			if !passwordStdin {
				fmt.Fprint(g.stderr, "Password: ")
			}
			line, err := bufio.NewReader(g.stdin).ReadString('\n')
			if err != nil && line == "" {
				return fmt.Errorf("registry login %s: read the password from stdin: %w", args[0], err)
			}
			pass := strings.TrimRight(line, "\r\n")
			if pass == "" {
				return fmt.Errorf("registry login %s: the password is empty", args[0])
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := ctxTimeout(30 * time.Second)
			defer cancel()
			if _, err := c.RegistryLogin(ctx, client.RegistryLoginRequest{Host: args[0], Username: user, Password: pass}); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "login for %s stored\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVarP(&user, "username", "u", "", "user name at the registry")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password (or token) from stdin without a prompt")
	return cmd
}

func newRegistryLogoutCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "logout HOST",
		Short: "Remove the login of HOST",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := ctxTimeout(30 * time.Second)
			defer cancel()
			if _, err := c.RegistryLogout(ctx, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "login for %s removed\n", args[0])
			return nil
		},
	}
}

func newRegistryLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List the hosts with a login (never the credentials) and the cluster's registry settings",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := ctxTimeout(30 * time.Second)
			defer cancel()
			logins, err := c.RegistryLogins(ctx)
			if err != nil {
				return err
			}
			cfg, err := c.RegistryConfig(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "HOST\tLOGIN\tMIRRORS\tPLAIN HTTP")
			hosts := map[string]bool{}
			for _, l := range logins {
				hosts[l.Host] = true
			}
			for h := range cfg.Mirrors {
				hosts[h] = true
			}
			for _, h := range cfg.Insecure {
				hosts[h] = true
			}
			names := make([]string, 0, len(hosts))
			for h := range hosts {
				names = append(names, h)
			}
			sort.Strings(names)
			for _, h := range names {
				login := "-"
				for _, l := range logins {
					if l.Host == h {
						login = "yes"
					}
				}
				plain := "-"
				for _, i := range cfg.Insecure {
					if i == h {
						plain = "yes"
					}
				}
				mirrors := strings.Join(cfg.Mirrors[h], ",")
				if mirrors == "" {
					mirrors = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", h, login, mirrors, plain)
			}
			if cfg.CAPEM != "" {
				fmt.Fprintln(tw, "(a cluster registry CA is set)")
			}
			return tw.Flush()
		},
	}
}

// registryClusterFlags are the registry settings of `cluster update`.
type registryClusterFlags struct {
	ca       string
	mirrors  []string
	insecure []string
}

func addRegistryClusterFlags(fs *pflag.FlagSet, f *registryClusterFlags) {
	fs.StringVar(&f.ca, "registry-ca", "", "PEM file of CA certificates every node trusts for registries, on top of the system pool (\"\" removes it)")
	fs.StringArrayVar(&f.mirrors, "registry-mirror", nil, "HOST=URL: pull HOST's images from the mirror URL first (repeat for more, in order; HOST= removes HOST's mirrors)")
	fs.StringArrayVar(&f.insecure, "insecure-registry", nil, "reach this registry host[:port] over plain HTTP (repeat; \"\" clears the list)")
}

func (f *registryClusterFlags) changed(fs *pflag.FlagSet) bool {
	return fs.Changed("registry-ca") || fs.Changed("registry-mirror") || fs.Changed("insecure-registry")
}

// apply changes cfg by the flags that were given; the others keep it.
func (f *registryClusterFlags) apply(fs *pflag.FlagSet, cfg api.RegistryConfig) (api.RegistryConfig, error) {
	if fs.Changed("registry-ca") {
		cfg.CAPEM = ""
		if f.ca != "" {
			b, err := os.ReadFile(f.ca)
			if err != nil {
				return cfg, fmt.Errorf("--registry-ca: %w", err)
			}
			cfg.CAPEM = string(b)
		}
	}
	if fs.Changed("registry-mirror") {
		next := map[string][]string{}
		for h, ms := range cfg.Mirrors {
			next[h] = ms
		}
		given := map[string]bool{}
		for _, m := range f.mirrors {
			host, u, ok := strings.Cut(m, "=")
			if !ok || host == "" {
				return cfg, fmt.Errorf("--registry-mirror %q: want HOST=URL (docker.io=https://mirror:5000)", m)
			}
			if !given[host] {
				delete(next, host) // the flags give HOST's whole list
				given[host] = true
			}
			if u != "" {
				next[host] = append(next[host], u)
			}
		}
		cfg.Mirrors = next
		if len(next) == 0 {
			cfg.Mirrors = nil
		}
	}
	if fs.Changed("insecure-registry") {
		cfg.Insecure = nil
		for _, h := range f.insecure {
			if h != "" {
				cfg.Insecure = append(cfg.Insecure, h)
			}
		}
	}
	return cfg, nil
}

// updateRegistry applies the registry flags of `cluster update`.
func updateRegistry(g *globals, c *client.Client, fs *pflag.FlagSet, f *registryClusterFlags) error {
	ctx, cancel := ctxTimeout(30 * time.Second)
	defer cancel()
	cur, err := c.RegistryConfig(ctx)
	if err != nil {
		return err
	}
	next, err := f.apply(fs, *cur)
	if err != nil {
		return err
	}
	if _, err := c.SetRegistryConfig(ctx, next); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "registry: %d mirrored hosts, %d plain-HTTP hosts, CA %s\n", len(next.Mirrors), len(next.Insecure), map[bool]string{true: "set", false: "none"}[next.CAPEM != ""])
	return nil
}

// registryServiceFlags are the registry options of service create/update.
type registryServiceFlags struct {
	withAuth  bool
	noResolve bool
}

func addRegistryServiceFlags(fs *pflag.FlagSet, f *registryServiceFlags) {
	fs.BoolVar(&f.withAuth, "with-registry-auth", false, "send this CLI's credential for the image's registry ($WARREN_REGISTRY_AUTH=user:password, else the docker config's credHelpers, credsStore or auths) to the nodes that pull it")
	fs.BoolVar(&f.noResolve, "no-resolve-image", false, "do not pin the image tag to the digest it names now (nodes then pull the tag, and may differ)")
}

// writeOptions builds the request options for a service's image.
func (f *registryServiceFlags) writeOptions(image string) (client.ServiceWriteOptions, error) {
	o := client.ServiceWriteOptions{NoResolveImage: f.noResolve}
	if !f.withAuth {
		return o, nil
	}
	host := api.ImageHost(image)
	cred, err := ownCredential(host)
	if err != nil {
		return o, fmt.Errorf("--with-registry-auth: %w", err)
	}
	o.RegistryAuth = &cred
	return o, nil
}

// ownCredential is this CLI's credential for host: $WARREN_REGISTRY_AUTH
// (user:password), else the docker CLI's (credential helper, store or
// auths entry), as `docker service create --with-registry-auth` sends
// the docker CLI's.
func ownCredential(host string) (api.RegistryCredential, error) {
	if v := os.Getenv("WARREN_REGISTRY_AUTH"); v != "" {
		u, p, ok := strings.Cut(v, ":")
		if !ok || u == "" || p == "" {
			return api.RegistryCredential{}, fmt.Errorf("$WARREN_REGISTRY_AUTH: want user:password")
		}
		return api.RegistryCredential{Username: u, Password: p}, nil
	}
	c, err := client.DockerConfig{}.Credential(host)
	if errors.Is(err, client.ErrNoDockerCredential) {
		return c, fmt.Errorf("%w (or set $WARREN_REGISTRY_AUTH)", err)
	}
	return c, err
}

// printWarnings shows what a write did that the operator should know.
func printWarnings(g *globals, res *client.WriteResult) {
	for _, w := range res.Warnings {
		fmt.Fprintln(g.stderr, "warning: "+w)
	}
}

// envGrace is envDuration for a grace where 0 means never: any duration
// that parses, 0 included, replaces the default.
func envGrace(key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(key)); err == nil && d >= 0 {
		return d
	}
	return def
}
