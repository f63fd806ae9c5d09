package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
)

// `warren secret` and `warren config` are one command tree built twice.
func newSecretCmd(g *globals, kind api.SecretKind) *cobra.Command {
	short := "Manage secrets (values never shown again; mounted from tmpfs at /run/secrets/NAME)"
	if kind == api.KindConfig {
		short = "Manage configs (mounted from tmpfs at /NAME by default)"
	}
	cmd := &cobra.Command{Use: string(kind), Short: short}
	cmd.AddCommand(newSecretCreateCmd(g, kind), newSecretLsCmd(g, kind), newSecretInspectCmd(g, kind),
		newSecretUpdateCmd(g, kind), newSecretRmCmd(g, kind))
	return cmd
}

// readValue reads a value from a file, or stdin for "-", refusing more
// than the kind's limit without reading all of an endless stream.
func readValue(g *globals, kind api.SecretKind, src string) ([]byte, error) {
	var r io.Reader = g.stdin
	if src != "-" {
		f, err := os.Open(src)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	limit := kind.MaxBytes()
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("read %s value from %s: %w", kind, src, err)
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%s value from %s: over the limit of %d KiB", kind, src, limit>>10)
	}
	return b, nil
}

func newSecretCreateCmd(g *globals, kind api.SecretKind) *cobra.Command {
	var labels []string
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] NAME [FILE|-]",
		Short: "Create a " + string(kind) + " from a file or stdin (-)",
		Example: fmt.Sprintf(`  printf s3cret | warren %[1]s create db-password -
  warren %[1]s create app.conf ./app.conf --label team=edge`, kind),
		Args: cobra.RangeArgs(1, 2),
		RunE: func(_ *cobra.Command, args []string) error {
			src := "-"
			if len(args) == 2 {
				src = args[1]
			}
			lbl, err := parseKV("--label", labels)
			if err != nil {
				return err
			}
			data, err := readValue(g, kind, src)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := ctxTimeout(30 * time.Second)
			defer cancel()
			res, err := c.CreateSecret(ctx, kind, client.SecretCreateRequest{Name: args[0], Labels: lbl, Data: data})
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, res.ID)
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&labels, "label", "l", nil, "label KEY=VALUE")
	return cmd
}

func newSecretUpdateCmd(g *globals, kind api.SecretKind) *cobra.Command {
	var labels []string
	cmd := &cobra.Command{
		Use:   "update [OPTIONS] NAME [FILE|-]",
		Short: "Replace a " + string(kind) + "'s value (rewritten in place in running tasks) or labels",
		Long: `Replace the value. Running tasks see the new file at once: it is rewritten atomically
(a new file in the same tmpfs renamed over the old one), so an application that re-reads it needs no
restart. Services that mount it with restart=true roll their tasks instead.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var req client.SecretUpdateRequest
			if len(args) == 2 {
				data, err := readValue(g, kind, args[1])
				if err != nil {
					return err
				}
				req.Data = data
			}
			if cmd.Flags().Changed("label") {
				lbl, err := parseKV("--label", labels)
				if err != nil {
					return err
				}
				req.Labels = lbl
			}
			if req.Data == nil && req.Labels == nil {
				return fmt.Errorf("nothing to update: give a FILE (or - for stdin) and/or --label")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := ctxTimeout(30 * time.Second)
			defer cancel()
			res, err := c.UpdateSecret(ctx, kind, args[0], req)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, res.ID)
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&labels, "label", "l", nil, "replace the labels: KEY=VALUE (repeat)")
	return cmd
}

func newSecretLsCmd(g *globals, kind api.SecretKind) *cobra.Command {
	list := func(c *client.Client, ctx context.Context) ([]client.SecretInfo, error) { return c.Secrets(ctx, kind) }
	return listCmd(g, "List "+string(kind)+"s", list, func(tw *tabwriter.Writer, all []client.SecretInfo) {
		row(tw, "ID", "NAME", "SIZE", "USED BY", "UPDATED")
		for _, s := range all {
			row(tw, shortID(s.ID), s.Spec.Name, s.Size, dash(strings.Join(s.UsedBy, ",")), ago(s.Meta.UpdatedAt))
		}
	})
}

func newSecretInspectCmd(g *globals, kind api.SecretKind) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NAME...",
		Short: "Show " + string(kind) + "s in detail (a secret's value is never shown)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			get := func(c *client.Client, ctx context.Context, ref string) (*client.SecretInfo, error) {
				return c.Secret(ctx, kind, ref)
			}
			return inspect(g, cmd, args, get, func(tw *tabwriter.Writer, out []client.SecretInfo) {
				for _, s := range out {
					row(tw, "ID:", s.ID)
					row(tw, "Name:", s.Spec.Name)
					row(tw, "Size:", s.Size)
					row(tw, "Used by:", dash(strings.Join(s.UsedBy, ", ")))
					if s.Data != nil {
						row(tw, "Data:", strconv.Quote(string(s.Data)))
					}
				}
			})
		},
	}
}

func newSecretRmCmd(g *globals, kind api.SecretKind) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"remove"},
		Short:   "Remove " + string(kind) + "s no service mounts",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return g.forEach(args, 30*time.Second, func(ctx context.Context, c *client.Client, a string) (string, error) {
				_, err := c.RemoveSecret(ctx, kind, a)
				return a, err
			})
		},
	}
}

// secretFlags are the service flags that mount secrets and configs.
type secretFlags struct {
	secrets, configs     []string // --secret, --config: the whole list
	secretAdd, configAdd []string
	secretRm, configRm   []string
}

func addSecretFlags(fs *pflag.FlagSet, f *secretFlags) {
	fs.StringArrayVar(&f.secrets, "secret", nil, "mount a secret: NAME or source=NAME[,target=/run/secrets/NAME][,uid=0][,gid=0][,mode=0444][,restart=true]")
	fs.StringArrayVar(&f.configs, "config", nil, "mount a config: NAME or source=NAME[,target=/NAME][,uid=0][,gid=0][,mode=0444][,restart=true]")
}

func addSecretUpdateFlags(fs *pflag.FlagSet, f *secretFlags) {
	fs.StringArrayVar(&f.secretAdd, "secret-add", nil, "add or replace a secret mount (same form as --secret)")
	fs.StringArrayVar(&f.secretRm, "secret-rm", nil, "remove a secret mount by secret name")
	fs.StringArrayVar(&f.configAdd, "config-add", nil, "add or replace a config mount (same form as --config)")
	fs.StringArrayVar(&f.configRm, "config-rm", nil, "remove a config mount by config name")
}

// applySecretFlags overlays the secret and config flags on c. Defaults
// (target, mode) are left to the API so they are the same for every client.
func applySecretFlags(c *api.ContainerSpec, f *secretFlags, set func(string) bool) error {
	for _, k := range []struct {
		kind            api.SecretKind
		list            *[]api.SecretRef
		all, add, rm    []string
		flag, addF, rmF string
	}{
		{api.KindSecret, &c.Secrets, f.secrets, f.secretAdd, f.secretRm, "secret", "secret-add", "secret-rm"},
		{api.KindConfig, &c.Configs, f.configs, f.configAdd, f.configRm, "config", "config-add", "config-rm"},
	} {
		if set(k.flag) {
			refs, err := parseSecretRefs("--"+k.flag, k.all)
			if err != nil {
				return err
			}
			*k.list = refs
		}
		if set(k.rmF) {
			out := slices.Clone(*k.list)
			for _, name := range k.rm {
				n := len(out)
				out = slices.DeleteFunc(out, func(r api.SecretRef) bool { return r.Name == name })
				if len(out) == n {
					return fmt.Errorf("--%s %q: the service mounts no %s of that name", k.rmF, name, k.kind)
				}
			}
			*k.list = out
		}
		if set(k.addF) {
			add, err := parseSecretRefs("--"+k.addF, k.add)
			if err != nil {
				return err
			}
			out := slices.Clone(*k.list)
			for _, r := range add {
				// A new mount of the same object at the same (or default)
				// target replaces the old one, so a rotation to a new
				// secret is one --secret-rm old --secret-add new.
				out = slices.DeleteFunc(out, func(o api.SecretRef) bool { return o.Name == r.Name && (r.Target == "" || o.Target == r.Target) })
				out = append(out, r)
			}
			*k.list = out
		}
	}
	return nil
}

func parseSecretRefs(flag string, in []string) ([]api.SecretRef, error) {
	out := make([]api.SecretRef, 0, len(in))
	for _, s := range in {
		r, err := parseSecretRef(flag, s)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// parseSecretRef reads NAME or the long form
// source=NAME,target=PATH,uid=N,gid=N,mode=0440,restart=true.
func parseSecretRef(flag, s string) (api.SecretRef, error) {
	var r api.SecretRef
	if !strings.Contains(s, "=") {
		if s == "" {
			return r, fmt.Errorf("%s: needs a name", flag)
		}
		r.Name = s
		return r, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return r, fmt.Errorf("%s %q: %q is not KEY=VALUE", flag, s, kv)
		}
		switch k {
		case "source", "src":
			r.Name = v
		case "target", "dst", "destination":
			r.Target = v
		case "uid", "gid":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return r, fmt.Errorf("%s %q: %s %q: must be a number", flag, s, k, v)
			}
			if k == "uid" {
				r.UID = uint32(n)
			} else {
				r.GID = uint32(n)
			}
		case "mode":
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil || n > 0o777 {
				return r, fmt.Errorf("%s %q: mode %q: must be octal permission bits such as 0440", flag, s, v)
			}
			r.Mode = uint32(n)
		case "restart":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return r, fmt.Errorf("%s %q: restart %q: must be true or false", flag, s, v)
			}
			r.Restart = b
		default:
			return r, fmt.Errorf("%s %q: unknown key %q (source, target, uid, gid, mode, restart)", flag, s, k)
		}
	}
	if r.Name == "" {
		return r, fmt.Errorf("%s %q: source=NAME is required", flag, s)
	}
	return r, nil
}
