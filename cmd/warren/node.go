package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
)

func newNodeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "Manage the cluster's nodes (like docker node)"}
	cmd.AddCommand(newNodeLsCmd(g), newNodeInspectCmd(g), newNodeUpdateCmd(g), newNodeRmCmd(g),
		newNodeRoleCmd(g, "promote", "Make workers managers (raft voters)", (*client.Client).PromoteNode),
		newNodeRoleCmd(g, "demote", "Make managers workers", (*client.Client).DemoteNode))
	return cmd
}

func newNodeLsCmd(g *globals) *cobra.Command {
	return listCmd(g, "List nodes", (*client.Client).Nodes, func(tw *tabwriter.Writer, nodes []api.Node) {
		row(tw, "ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS", "ADDRESS", "SUBNET", "VERSION")
		for _, n := range nodes {
			row(tw, shortID(n.ID), n.Status.Hostname, n.Status.State, n.Spec.Availability,
				managerStatus(n), dash(n.Status.Addr), dash(n.Status.Network.Subnet), dash(n.Status.Version))
		}
	})
}

func managerStatus(n api.Node) string {
	if n.Spec.Role != api.RoleManager {
		return ""
	}
	if m := n.Status.Manager; m != nil && m.Leader {
		return "Leader"
	}
	if m := n.Status.Manager; m != nil && !m.Voter {
		return "Joining"
	}
	return "Reachable"
}

func newNodeInspectCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NODE...",
		Short: "Show nodes in detail (JSON by default)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return inspect(g, cmd, args, (*client.Client).Node, func(tw *tabwriter.Writer, out []api.Node) {
				for _, n := range out {
					row(tw, "ID:", n.ID)
					row(tw, "Hostname:", n.Status.Hostname)
					row(tw, "Role:", n.Spec.Role)
					row(tw, "State:", n.Status.State)
					row(tw, "Availability:", n.Spec.Availability)
					row(tw, "Address:", n.Status.Addr)
					row(tw, "Platform:", api.Platform{OS: n.Status.OS, Architecture: n.Status.Arch, Variant: n.Status.Variant}.String())
					row(tw, "CPUs:", float64(n.Status.Capacity.NanoCPUs)/1e9)
					row(tw, "Memory:", fmt.Sprintf("%d MiB", n.Status.Capacity.MemoryBytes>>20))
					for k, v := range n.Spec.Labels {
						row(tw, "Label:", k+"="+v)
					}
				}
			})
		},
	}
}

func newNodeUpdateCmd(g *globals) *cobra.Command {
	var availability string
	var add, rm []string
	cmd := &cobra.Command{
		Use:   "update [OPTIONS] NODE",
		Short: "Change a node's availability or labels",
		Example: `  warren node update --availability drain node-2
  warren node update --label-add site=a node-3`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var u client.NodeUpdate
			if cmd.Flags().Changed("availability") {
				a := api.Availability(availability)
				switch a {
				case api.AvailabilityActive, api.AvailabilityPause, api.AvailabilityDrain:
				default:
					return fmt.Errorf("--availability %q: must be active, pause or drain", availability)
				}
				u.Availability = &a
			}
			if len(add) > 0 {
				kv, err := parseKV("--label-add", add)
				if err != nil {
					return err
				}
				u.LabelAdd = kv
			}
			u.LabelRm = rm
			if u.Availability == nil && u.LabelAdd == nil && u.LabelRm == nil {
				return fmt.Errorf("nothing to update: give --availability, --label-add or --label-rm")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := ctxTimeout(30 * time.Second)
			defer cancel()
			if _, err := c.UpdateNode(ctx, args[0], u); err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&availability, "availability", "", "active, pause (keep tasks, take no new ones) or drain (move replicated tasks away)")
	cmd.Flags().StringArrayVar(&add, "label-add", nil, "add or change a label KEY=VALUE")
	cmd.Flags().StringArrayVar(&rm, "label-rm", nil, "remove a label")
	return cmd
}

func newNodeRmCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm NODE...",
		Aliases: []string{"remove"},
		Short:   "Remove nodes from the cluster",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return g.forEach(args, 30*time.Second, func(ctx context.Context, c *client.Client, a string) (string, error) {
				_, err := c.RemoveNode(ctx, a, force)
				return a, err
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove a node that is still up or a manager")
	return cmd
}

func newNodeRoleCmd(g *globals, verb, short string, act func(*client.Client, context.Context, string) (*client.WriteResult, error)) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NODE...",
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return g.forEach(args, 60*time.Second, func(ctx context.Context, c *client.Client, a string) (string, error) {
				_, err := act(c, ctx, a)
				return fmt.Sprintf("node %s %sd", a, verb), err
			})
		},
	}
}
