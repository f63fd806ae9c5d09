package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/stack"
)

func newStackCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stack",
		Short: "Manage stacks: services deployed together from a Compose file (like docker stack)",
	}
	cmd.AddCommand(newStackConfigCmd(g), newStackDeployCmd(g), newStackLsCmd(g), newStackPsCmd(g), newStackRmCmd(g))
	return cmd
}

func newStackConfigCmd(g *globals) *cobra.Command {
	f := &fileFlags{}
	cmd := &cobra.Command{
		Use:   "config -f FILE [-f FILE…]",
		Short: "Print the Warren specs the files convert to, without contacting a cluster",
		Long: `Print, as YAML, the stack the files convert to: every service's Warren spec and what it
depends on. Warnings (options Warren ignores) go to stderr. Exit status 0: the files convert;
1: they are refused, with the file, the key and the reason.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			st, err := loadStack(g, f)
			if err != nil {
				return err
			}
			b, err := st.YAML()
			if err != nil {
				return err
			}
			_, err = g.stdout.Write(b)
			return err
		},
	}
	addFileFlags(cmd.Flags(), f)
	return cmd
}

// newStackDeployCmd is `warren apply` under the name Swarm users type:
// `warren stack deploy -c compose.yaml STACK`.
func newStackDeployCmd(g *globals) *cobra.Command {
	f := &applyOpts{}
	var composeFiles []string
	cmd := &cobra.Command{
		Use:     "deploy [-c|-f FILE]… STACK",
		Aliases: []string{"up"},
		Short:   "Deploy a stack (warren apply)",
		Example: "  warren stack deploy -c compose.yaml shop",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			f.files = append(f.files, composeFiles...)
			if len(args) == 1 {
				if f.name != "" && f.name != args[0] {
					return fmt.Errorf("stack name given twice: %q and --name %q", args[0], f.name)
				}
				f.name = args[0]
			}
			return runApply(g, f)
		},
	}
	addApplyFlags(cmd.Flags(), f)
	cmd.Flags().StringArrayVarP(&composeFiles, "compose-file", "c", nil, "alias of --file")
	return cmd
}

// stackServices are the services labelled with a stack, by stack.
func stackServices(svcs []api.Service) map[string][]api.Service {
	out := map[string][]api.Service{}
	for _, s := range svcs {
		if name := s.Spec.Labels[stack.LabelStack]; name != "" {
			out[name] = append(out[name], s)
		}
	}
	return out
}

func newStackLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List stacks",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := ctxTimeout(30 * time.Second)
			defer cancel()
			svcs, err := c.Services(ctx)
			if err != nil {
				return err
			}
			type listed struct {
				Name     string `json:"name"`
				Services int    `json:"services"`
			}
			var out []listed
			for name, ss := range stackServices(svcs) {
				out = append(out, listed{name, len(ss)})
			}
			sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
			return g.printer().object(out, func(tw *tabwriter.Writer) {
				row(tw, "NAME", "SERVICES")
				for _, s := range out {
					row(tw, s.Name, s.Services)
				}
			})
		},
	}
}

func newStackPsCmd(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "ps STACK",
		Short: "List the tasks of a stack's services",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := ctxTimeout(30 * time.Second)
			defer cancel()
			svcs, err := c.Services(ctx)
			if err != nil {
				return err
			}
			mine := stackServices(svcs)[args[0]]
			if len(mine) == 0 {
				return fmt.Errorf("stack %q: no services", args[0])
			}
			ids := map[string]bool{}
			for _, s := range mine {
				ids[s.ID] = true
			}
			all0, err := c.Tasks(ctx, client.TaskFilter{})
			if err != nil {
				return err
			}
			var tasks []api.Task
			for _, t := range all0 {
				if ids[t.ServiceID] {
					tasks = append(tasks, t)
				}
			}
			if !all {
				tasks = currentTasks(tasks)
			}
			sortTasks(tasks)
			sort.SliceStable(tasks, func(i, j int) bool { return tasks[i].ServiceName < tasks[j].ServiceName })
			nodes, _ := c.Nodes(ctx)
			hosts := map[string]string{}
			for _, n := range nodes {
				hosts[n.ID] = n.Status.Hostname
			}
			return g.printer().object(tasks, func(tw *tabwriter.Writer) {
				row(tw, "ID", "NAME", "IMAGE", "NODE", "DESIRED", "CURRENT", "HEALTH", "ERROR")
				for _, t := range tasks {
					node := hosts[t.NodeID]
					if node == "" {
						node = shortID(t.NodeID)
					}
					row(tw, shortID(t.ID), client.TaskName(t), t.Spec.Container.Image, dash(node), t.DesiredState,
						fmt.Sprintf("%s %s", t.Status.State, ago(t.Status.Timestamp)), dash(string(t.Status.Health)), t.Status.Err)
				}
			})
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "include finished tasks")
	return cmd
}

func newStackRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rm STACK…",
		Aliases: []string{"remove", "down"},
		Short:   "Remove stacks: their services, then their secrets, configs and volumes (only those labelled with the stack; a volume's data stays on its node)",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := ctxTimeout(30 * time.Second)
			svcs, err := c.Services(ctx)
			cancel()
			if err != nil {
				return err
			}
			byStack := stackServices(svcs)
			ctx, cancel = ctxTimeout(30 * time.Second)
			cur, err := clusterObjects(ctx, c)
			cancel()
			if err != nil {
				return err
			}
			var missing []string
			for _, name := range args {
				ss := byStack[name]
				objs := stack.StackObjects(name, cur.Services, cur.Secrets, cur.Volumes)
				if len(ss) == 0 && len(objs) == 0 {
					missing = append(missing, name)
					continue
				}
				for _, s := range ss {
					ctx, cancel := ctxTimeout(30 * time.Second)
					_, err := c.RemoveService(ctx, s.ID)
					cancel()
					if err != nil {
						return fmt.Errorf("stack %s: remove %s: %w", name, s.Spec.Name, err)
					}
					fmt.Fprintf(g.stdout, "Removing service %s\n", s.Spec.Name)
				}
				// After the services: the API refuses to remove what a
				// service still mounts.
				if err := stack.RemoveObjects(context.Background(), apiCluster{c}, objs, func(s string) { fmt.Fprintln(g.stdout, s) }); err != nil {
					return fmt.Errorf("stack %s: %w", name, err)
				}
			}
			if len(missing) > 0 {
				return fmt.Errorf("no stack %s", strings.Join(missing, ", "))
			}
			return nil
		},
	}
}
