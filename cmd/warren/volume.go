package main

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
)

func newVolumeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "volume", Short: "Manage named volumes (like docker volume)"}
	cmd.AddCommand(newVolumeCreateCmd(g), newVolumeLsCmd(g), newVolumeInspectCmd(g), newVolumeRmCmd(g))
	return cmd
}

// volumeFlags are the flags of `volume create`, kept apart so that their
// parsing is a pure function the tests call.
type volumeFlags struct {
	driver      string
	node        string
	constraints []string
	labels      []string
	opts        []string
	scope       string
	access      string
	shared      bool
}

func (f volumeFlags) spec(name string) (api.VolumeSpec, error) {
	if err := api.ValidVolumeName(name); err != nil {
		return api.VolumeSpec{}, err
	}
	if f.node != "" && len(f.constraints) > 0 {
		return api.VolumeSpec{}, fmt.Errorf("--node and --constraint: give one or the other")
	}
	labels, err := parseKV("--label", f.labels)
	if err != nil {
		return api.VolumeSpec{}, err
	}
	opts, err := parseKV("--opt", f.opts)
	if err != nil {
		return api.VolumeSpec{}, err
	}
	s := api.VolumeSpec{
		Name: name, Driver: f.driver, Node: f.node, Constraints: f.constraints,
		Scope: api.VolumeScope(f.scope), Access: api.VolumeAccess(f.access), Shared: f.shared,
	}
	if len(labels) > 0 {
		s.Labels = labels
	}
	if len(opts) > 0 {
		s.Opts = opts
	}
	return s, nil
}

func newVolumeCreateCmd(g *globals) *cobra.Command {
	var f volumeFlags
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a named volume",
		Long: `Create a named volume. A local volume lives on one node: give it with --node, limit where it may
be created with --constraint, or leave both out and the first task that mounts it picks the node.
Every later task mounting it is placed on that node. A network driver (e.g. sshfs) makes a
multi-node volume that follows its tasks. A volume a service mounts that does not exist is created
local at first use.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			spec, err := f.spec(args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := ctxTimeout(30 * time.Second)
			defer cancel()
			vol, err := c.CreateVolume(ctx, spec)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, vol.Name)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.driver, "driver", "d", api.LocalDriver, "volume driver: local or a plugin installed on the nodes")
	fl.StringVar(&f.node, "node", "", "node (ID or hostname) a local volume lives on")
	fl.StringArrayVar(&f.constraints, "constraint", nil, "where a local volume may be created (node.labels.k==v ...)")
	fl.StringArrayVarP(&f.labels, "label", "l", nil, "label KEY=VALUE")
	fl.StringArrayVar(&f.opts, "opt", nil, "driver option KEY=VALUE")
	fl.StringVar(&f.scope, "scope", "", "single-node or multi-node (default: what the driver declares)")
	fl.StringVar(&f.access, "access", "", "single-writer, multi-reader or multi-writer")
	fl.BoolVar(&f.shared, "shared", false, "let more than one task mount a single-node volume at once (all on its node)")
	return cmd
}

func newVolumeLsCmd(g *globals) *cobra.Command {
	return listCmd(g, "List volumes", (*client.Client).Volumes, func(tw *tabwriter.Writer, vols []api.Volume) {
		row(tw, "NAME", "DRIVER", "SCOPE", "ACCESS", "NODE", "LABELS")
		for _, v := range vols {
			row(tw, v.Name, v.Spec.Driver, v.Spec.Scope, access(v), dash(shortID(v.Status.Node)), dash(labelText(v.Spec.Labels)))
		}
	})
}

func access(v api.Volume) string {
	if v.Spec.Shared {
		return string(v.Spec.Access) + " (shared)"
	}
	return string(v.Spec.Access)
}

func labelText(l map[string]string) string {
	parts := make([]string, 0, len(l))
	for k, v := range l {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func newVolumeInspectCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NAME...",
		Short: "Show volumes in detail (JSON by default)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return inspect(g, cmd, args, (*client.Client).Volume, func(tw *tabwriter.Writer, out []api.Volume) {
				for _, v := range out {
					row(tw, "Name:", v.Name)
					row(tw, "Driver:", v.Spec.Driver)
					row(tw, "Scope:", v.Spec.Scope)
					row(tw, "Access:", access(v))
					row(tw, "Node:", dash(v.Status.Node))
					row(tw, "Labels:", dash(labelText(v.Spec.Labels)))
					row(tw, "Options:", dash(labelText(v.Spec.Opts)))
					if v.Status.CreatedBy != "" {
						row(tw, "Created by:", "service "+v.Status.CreatedBy)
					}
					row(tw, "Created:", v.Meta.CreatedAt.Format(time.RFC3339))
				}
			})
		},
	}
}

func newVolumeRmCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"remove"},
		Short:   "Remove volumes (refused while a service mounts one, unless --force)",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := ctxTimeout(30 * time.Second)
			defer cancel()
			for _, name := range args {
				if _, err := c.RemoveVolume(ctx, name, force); err != nil {
					return err
				}
				fmt.Fprintln(g.stdout, name)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove even while services mount the volume")
	return cmd
}
