package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/runtime"
)

func newServiceCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "service",
		Aliases: []string{"svc"},
		Short:   "Manage services (like docker service)",
	}
	cmd.AddCommand(
		newServiceCreateCmd(g),
		newServiceUpdateCmd(g),
		newServiceLsCmd(g),
		newServiceInspectCmd(g),
		newServicePsCmd(g),
		newServiceScaleCmd(g),
		newServiceRmCmd(g),
		newServicePromoteCmd(g),
		newServiceRollbackCmd(g),
		newServiceLogsCmd(g),
	)
	return cmd
}

func addServiceFlags(fs *pflag.FlagSet, f *serviceFlags) {
	fs.StringVar(&f.image, "image", "", "image to run, e.g. nginx:1.27 or warren/demo:v1")
	fs.Uint64Var(&f.replicas, "replicas", 1, "number of tasks (replicated mode)")
	fs.StringVar(&f.mode, "mode", "replicated", "replicated or global (one task per node)")
	fs.StringArrayVarP(&f.ports, "publish", "p", nil, "publish a port: PUBLISHED:TARGET[/tcp|udp] (every node, and the service VIP)")
	fs.StringArrayVar(&f.portAlias, "port", nil, "alias of --publish")
	fs.StringArrayVarP(&f.env, "env", "e", nil, "environment variable KEY=VALUE")
	fs.StringArrayVarP(&f.labels, "label", "l", nil, "service label KEY=VALUE")
	fs.StringArrayVar(&f.containerLabels, "container-label", nil, "container label KEY=VALUE")
	fs.StringArrayVar(&f.constraints, "constraint", nil, "placement constraint, e.g. node.labels.site==a or node.role!=manager")
	fs.Uint64Var(&f.maxPerNode, "replicas-max-per-node", 0, "at most this many tasks of the service per node (0 = no limit)")
	fs.StringVar(&f.command, "entrypoint", "", "override the image entrypoint")
	fs.StringArrayVar(&f.args, "args", nil, "arguments (replaces the image command); repeat for each")
	fs.StringVarP(&f.workdir, "workdir", "w", "", "working directory in the container")
	fs.StringVarP(&f.user, "user", "u", "", "user[:group] to run as")
	fs.StringVar(&f.hostname, "hostname", "", "container hostname")
	fs.StringArrayVar(&f.mounts, "mount", nil, "mount: type=bind,source=/a,target=/b[,readonly] | type=tmpfs,target=/t[,tmpfs-size=64M] | /a:/b[:ro]")
	fs.BoolVar(&f.readOnly, "read-only", false, "mount the root filesystem read-only")
	fs.StringVar(&f.reserveCPU, "reserve-cpu", "", "CPUs reserved for scheduling, e.g. 0.25")
	fs.StringVar(&f.reserveMemory, "reserve-memory", "", "memory reserved for scheduling, e.g. 64M")
	fs.StringVar(&f.limitCPU, "limit-cpu", "", "CPU limit, e.g. 0.5")
	fs.StringVar(&f.limitMemory, "limit-memory", "", "memory limit, e.g. 128M")
	fs.Int64Var(&f.limitPids, "limit-pids", 0, "maximum number of processes (0 = no limit)")
	fs.StringVar(&f.healthCmd, "health-cmd", "", "health check: command run in the container (exit 0 = healthy)")
	fs.StringVar(&f.healthHTTP, "health-http", "", "health check: HTTP GET of this path on the task's address")
	fs.Uint16Var(&f.healthTCP, "health-tcp", 0, "health check: TCP connect to this port of the task")
	fs.DurationVar(&f.healthInterval, "health-interval", 5*time.Second, "time between health checks")
	fs.DurationVar(&f.healthTimeout, "health-timeout", 2*time.Second, "time a health check may take")
	fs.Uint64Var(&f.healthRetries, "health-retries", 3, "consecutive failures before a task is unhealthy")
	fs.DurationVar(&f.healthStart, "health-start-period", 0, "failures during this time after start do not count")
	fs.StringVar(&f.restartCond, "restart-condition", "any", "restart when a task stops: none, on-failure or any")
	fs.DurationVar(&f.restartDelay, "restart-delay", 100*time.Millisecond, "delay before the first restart (doubles up to 10s)")
	fs.Uint64Var(&f.restartMax, "restart-max-attempts", 0, "give up after this many restarts (0 = never)")
	fs.DurationVar(&f.restartWindow, "restart-window", 0, "window in which restarts are counted (0 = forever)")
	fs.StringVar(&f.stopSignal, "stop-signal", "", "signal that stops the container (default SIGTERM)")
	fs.DurationVar(&f.stopGrace, "stop-grace-period", runtime.DefaultStopGrace, "time to wait before killing a stopping container")
	fs.StringVar(&f.updateStrategy, "update-strategy", "rolling", "rolling, blue-green or canary")
	fs.Uint64Var(&f.updateParallel, "update-parallelism", 1, "tasks updated at a time (rolling)")
	fs.DurationVar(&f.updateDelay, "update-delay", 0, "delay between updating batches of tasks")
	fs.StringVar(&f.updateOrder, "update-order", "stop-first", "stop-first or start-first")
	fs.StringVar(&f.updateFailure, "update-failure-action", "pause", "on failure during an update: pause, rollback or continue")
	fs.Uint32Var(&f.canaryWeight, "canary-weight", 10, "percent of new connections sent to the new version (canary); on a waiting canary, a step: only the weights change (100 promotes)")
	fs.DurationVar(&f.updateMonitor, "update-monitor", 0, "time a new task may take to become healthy before it counts as failed (default: health start period + (interval + timeout) × retries)")
	fs.Float64Var(&f.maxFailureRatio, "update-max-failure-ratio", 0, "fraction of tasks that may fail during an update before the failure action applies")
	fs.DurationVar(&f.keep, "bluegreen-keep", 30*time.Second, "after a blue-green or canary promote, keep the previous version (without traffic) this long so that rollback is instant")
	fs.UintSliceVar(&f.canarySteps, "canary-steps", nil, "canary weights to step through by itself, e.g. 10,50,100 (100 promotes)")
	fs.DurationVar(&f.canaryInterval, "canary-interval", 2*time.Minute, "time at each --canary-steps weight once its tasks are ready")
	fs.StringVar(&f.canaryMaxErrors, "canary-max-error-rate", "0", "canary analysis: roll back by itself a canary whose failed connections (connect failures, resets) exceed this share and the stable version's, e.g. 1% (0 = off)")
	fs.Uint64Var(&f.canaryMinConns, "canary-min-connections", 0, "connections the canary must have had before canary analysis judges it and an automatic step moves on (default 100)")
	fs.BoolVar(&f.keepUnhealthy, "health-keep-unhealthy", false, "do not replace a task whose health check fails (it gets no traffic)")
	fs.StringVar(&f.version, "version", "", "version label of this spec for traffic splitting (default derived from the spec version)")
	addSecretFlags(fs, &f.refs)
	addDisconnectFlags(fs, &f.disconnect)
}

// flagSet reports whether the user set a flag; --port is an alias of --publish.
func flagSet(fs *pflag.FlagSet) func(string) bool {
	return func(name string) bool {
		if name == "publish" {
			return fs.Changed("publish") || fs.Changed("port")
		}
		return fs.Changed(name)
	}
}

type waitOpts struct {
	detach  bool
	timeout time.Duration
	quiet   bool
	// failOnRollback: the command asked for a new spec, so a rollback by
	// the failure action is its failure.
	failOnRollback bool
}

func addWaitFlags(fs *pflag.FlagSet, w *waitOpts) {
	fs.BoolVarP(&w.detach, "detach", "d", false, "return at once instead of waiting for the service to converge")
	fs.DurationVar(&w.timeout, "timeout", 3*time.Minute, "give up waiting for convergence after this long (exit status 3)")
	fs.BoolVarP(&w.quiet, "quiet", "q", false, "print only the service ID")
}

func newServiceCreateCmd(g *globals) *cobra.Command {
	f := &serviceFlags{}
	var w waitOpts
	var reg registryServiceFlags
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] NAME",
		Short: "Create a service and wait until its tasks run",
		Example: `  warren service create web --image warren/demo:v1 --replicas 3 --port 8080:80
  warren service create agent --image telegraf --mode global --constraint node.labels.site==a`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("image") {
				return fmt.Errorf("--image is required")
			}
			spec, err := specFromFlags(args[0], f, flagSet(cmd.Flags()))
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			wo, err := reg.writeOptions(spec.Task.Container.Image)
			if err != nil {
				return err
			}
			// Pinning the image asks its registry: allow for a slow one.
			ctx, cancel := ctxTimeout(60 * time.Second)
			res, err := c.CreateServiceWith(ctx, spec, wo)
			cancel()
			if err != nil {
				return err
			}
			printWarnings(g, res)
			fmt.Fprintln(g.stdout, res.ID)
			if w.detach {
				return nil
			}
			return waitConverged(g, c, args[0], res.Generation, w)
		},
	}
	addServiceFlags(cmd.Flags(), f)
	addWaitFlags(cmd.Flags(), &w)
	addRegistryServiceFlags(cmd.Flags(), &reg)
	return cmd
}

func newServiceUpdateCmd(g *globals) *cobra.Command {
	f := &serviceFlags{}
	var w waitOpts
	var force bool
	var reg registryServiceFlags
	cmd := &cobra.Command{
		Use:   "update [OPTIONS] SERVICE",
		Short: "Change a service; the change is rolled out by its update strategy",
		Example: `  warren service update web --image warren/demo:v2
  warren service update web --image warren/demo:v2 --update-strategy canary --canary-weight 10
  warren service promote web`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := ctxTimeout(60 * time.Second)
			defer cancel()
			svc, err := c.Service(ctx, args[0])
			if err != nil {
				return err
			}
			spec, err := applyFlags(svc.Spec, f, flagSet(cmd.Flags()))
			if err != nil {
				return err
			}
			if force {
				if spec.Labels == nil {
					spec.Labels = map[string]string{}
				}
				spec.Labels["warren.force-update"] = strconv.FormatInt(time.Now().UnixNano(), 10)
			}
			if force && !reg.noResolve {
				// A forced update re-pins the tag, as in Swarm.
				spec.Task.Container.ImageDigest, spec.Task.Container.ImagePlatforms = "", nil
			}
			wo, err := reg.writeOptions(spec.Task.Container.Image)
			if err != nil {
				return err
			}
			begin := time.Now()
			res, err := c.UpdateServiceWith(ctx, args[0], spec, wo)
			if err != nil {
				return err
			}
			printWarnings(g, res)
			fmt.Fprintln(g.stdout, svc.Spec.Name)
			if w.detach {
				return nil
			}
			w.failOnRollback = true
			return waitMoved(g, c, args[0], w, res.Generation, res.Index, begin)
		},
	}
	addServiceFlags(cmd.Flags(), f)
	addWaitFlags(cmd.Flags(), &w)
	cmd.Flags().BoolVar(&force, "force", false, "replace the tasks even if nothing changed (and pin the image tag again)")
	addSecretUpdateFlags(cmd.Flags(), &f.refs)
	addRegistryServiceFlags(cmd.Flags(), &reg)
	return cmd
}

func newServiceLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List services",
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
			tasks, err := c.Tasks(ctx, client.TaskFilter{})
			if err != nil {
				return err
			}
			// JSON and YAML carry the counts `REPLICAS` shows, next to the service.
			type listed struct {
				api.Service
				Replicas struct {
					Ready   int `json:"ready"`
					Desired int `json:"desired"`
				} `json:"replicas"`
			}
			out := make([]listed, len(svcs))
			for i, s := range svcs {
				out[i].Service = s
				out[i].Replicas.Ready, out[i].Replicas.Desired = client.ReplicaCounts(s, tasks)
			}
			return g.printer().object(out, func(tw *tabwriter.Writer) {
				row(tw, "ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS", "VIP")
				for _, s := range svcs {
					ready, want := client.ReplicaCounts(s, tasks)
					reps := fmt.Sprintf("%d/%d", ready, want)
					if v := client.VersionsString(s); v != "" {
						reps += " (" + v + ")"
					}
					row(tw, shortID(s.ID), s.Spec.Name, s.Spec.Mode, reps,
						s.Spec.Task.Container.Image, portsString(s.Spec.Ports), s.Endpoint.VIP)
				}
			})
		},
	}
}

func weightsString(w map[string]uint32) string {
	labels := make([]string, 0, len(w))
	for v := range w {
		labels = append(labels, v)
	}
	sort.Strings(labels)
	parts := make([]string, len(labels))
	for i, v := range labels {
		parts[i] = fmt.Sprintf("%s=%d%%", v, w[v])
	}
	return strings.Join(parts, " ")
}

func portsString(ps []api.PortConfig) string {
	var out []string
	for _, p := range ps {
		if p.PublishedPort != 0 {
			out = append(out, fmt.Sprintf("*:%d->%d/%s", p.PublishedPort, p.TargetPort, p.Protocol))
		} else {
			out = append(out, fmt.Sprintf("%d/%s", p.TargetPort, p.Protocol))
		}
	}
	return strings.Join(out, ",")
}

func newServiceInspectCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inspect SERVICE...",
		Short: "Show services in detail (JSON by default)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return inspect(g, cmd, args, (*client.Client).Service, func(tw *tabwriter.Writer, out []api.Service) {
				for _, s := range out {
					row(tw, "ID:", s.ID)
					row(tw, "Name:", s.Spec.Name)
					row(tw, "Mode:", s.Spec.Mode)
					row(tw, "Replicas:", s.Spec.Replicas)
					row(tw, "Image:", s.Spec.Task.Container.Image)
					if c := s.Spec.Task.Container; c.ImageDigest != "" {
						row(tw, "Image digest:", c.ImageDigest)
						if len(c.ImagePlatforms) > 0 {
							ps := make([]string, len(c.ImagePlatforms))
							for i, p := range c.ImagePlatforms {
								ps[i] = p.String()
							}
							row(tw, "Image platforms:", strings.Join(ps, ", "))
						}
					}
					row(tw, "VIP:", s.Endpoint.VIP)
					row(tw, "Ports:", portsString(s.Spec.Ports))
					row(tw, "Update strategy:", s.Spec.Update.Strategy)
					if s.Update != nil {
						row(tw, "Update state:", s.Update.State, s.Update.Message)
						if len(s.Update.Weights) > 0 {
							row(tw, "Weights:", weightsString(s.Update.Weights))
						}
					}
					if st := s.Status; st != nil {
						row(tw, "Ready:", fmt.Sprintf("%d/%d", st.Ready, st.Desired), client.VersionsString(s))
					}
				}
			})
		},
	}
	return cmd
}

func newServicePsCmd(g *globals) *cobra.Command {
	var all bool
	var filters []string
	cmd := &cobra.Command{
		Use:   "ps SERVICE",
		Short: "List the tasks of a service with their history, and why a task is not running",
		Long: `List the tasks of a service. As in Docker, the tasks each slot ran before
(up to 5) are listed under its current one, marked \_; --filter desired-state=running
shows only the current ones. A task stopped by the cluster says why in ERROR
(for example, replaced because it was unhealthy).`,
		Args: cobra.ExactArgs(1),
	}
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		desired := ""
		for _, f := range filters {
			k, v, ok := strings.Cut(f, "=")
			if !ok || k != "desired-state" || (v != "running" && v != "shutdown" && v != "accepted") {
				return fmt.Errorf("--filter %q: only desired-state=running|shutdown|accepted is supported", f)
			}
			desired = v
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		ctx, cancel := ctxTimeout(30 * time.Second)
		defer cancel()
		svc, err := c.Service(ctx, args[0])
		if err != nil {
			return err
		}
		tasks, err := c.Tasks(ctx, client.TaskFilter{Service: svc.ID})
		if err != nil {
			return err
		}
		nodes, _ := c.Nodes(ctx)
		names := map[string]string{}
		for _, n := range nodes {
			names[n.ID] = n.Status.Hostname
		}
		switch desired {
		case "running", "accepted":
			tasks = currentTasks(tasks)
		case "shutdown":
			tasks = slices.DeleteFunc(tasks, func(t api.Task) bool { return t.DesiredState == api.TaskRunning })
		}
		sortTasks(tasks)
		err = g.printer().object(tasks, func(tw *tabwriter.Writer) {
			row(tw, "ID", "NAME", "IMAGE", "NODE", "DESIRED", "CURRENT", "HEALTH", "ADDR", "RESTARTS", "ERROR")
			prev := ""
			for _, t := range tasks {
				node := names[t.NodeID]
				if node == "" {
					node = shortID(t.NodeID)
				}
				msg := t.Status.Err
				if msg == "" && !t.Status.State.Terminal() && t.Status.State != api.TaskRunning {
					msg = t.Status.Message
				}
				if t.StopReason != "" {
					msg = strings.TrimSpace(t.StopReason + " " + msg)
				}
				name := client.TaskName(t)
				if name == prev {
					name = ` \_ ` + name
				} else {
					prev = name
				}
				row(tw, shortID(t.ID), name, t.Spec.Container.Image, dash(node), t.DesiredState,
					fmt.Sprintf("%s %s", t.Status.State, ago(t.Status.Timestamp)), dash(string(t.Status.Health)),
					dash(t.Status.Addr), t.Status.Restarts, msg)
			}
		})
		if err == nil && svc.Update != nil && g.printer().format != "json" && g.printer().format != "yaml" {
			fmt.Fprintf(g.stdout, "\nupdate: %s", svc.Update.State)
			if svc.Update.Message != "" {
				fmt.Fprintf(g.stdout, ": %s", svc.Update.Message)
			}
			fmt.Fprintln(g.stdout)
		}
		return err
	}
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, "desired-state=running|shutdown|accepted")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "include finished tasks (the default now, as in Docker)")
	_ = cmd.Flags().MarkHidden("all")
	return cmd
}

func currentTasks(ts []api.Task) []api.Task {
	var out []api.Task
	for _, t := range ts {
		if t.DesiredState == api.TaskRunning || !t.Status.State.Terminal() {
			out = append(out, t)
		}
	}
	return out
}

func sortTasks(ts []api.Task) {
	sort.Slice(ts, func(i, j int) bool {
		if ts[i].Slot != ts[j].Slot {
			return ts[i].Slot < ts[j].Slot
		}
		if ts[i].NodeID != ts[j].NodeID {
			return ts[i].NodeID < ts[j].NodeID
		}
		return ts[i].Meta.CreatedAt.After(ts[j].Meta.CreatedAt)
	})
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return time.Since(t).Truncate(time.Second).String() + " ago"
}

func newServiceScaleCmd(g *globals) *cobra.Command {
	var w waitOpts
	cmd := &cobra.Command{
		Use:     "scale SERVICE=REPLICAS...",
		Short:   "Change the number of replicas of services",
		Example: "  warren service scale web=5 api=2",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			for _, a := range args {
				name, n, ok := strings.Cut(a, "=")
				reps, err := strconv.ParseUint(n, 10, 64)
				if !ok || err != nil {
					return fmt.Errorf("%q: must be SERVICE=REPLICAS with a whole number", a)
				}
				ctx, cancel := ctxTimeout(30 * time.Second)
				res, err := c.ScaleService(ctx, name, reps)
				cancel()
				if err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "%s scaled to %d\n", name, reps)
				if !w.detach {
					if err := waitConverged(g, c, name, res.Generation, w); err != nil {
						return err
					}
				}
			}
			return nil
		},
	}
	addWaitFlags(cmd.Flags(), &w)
	return cmd
}

func newServiceRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rm SERVICE...",
		Aliases: []string{"remove"},
		Short:   "Remove services and stop their tasks",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return g.forEach(args, 30*time.Second, func(ctx context.Context, c *client.Client, a string) (string, error) {
				_, err := c.RemoveService(ctx, a)
				return a, err
			})
		},
	}
}

func newServicePromoteCmd(g *globals) *cobra.Command {
	return newServiceActionCmd(g, "promote SERVICE", "Finish a canary or blue-green update: send all traffic to the new version", (*client.Client).PromoteService)
}

func newServiceRollbackCmd(g *globals) *cobra.Command {
	return newServiceActionCmd(g, "rollback SERVICE", "Go back to the service's previous spec", (*client.Client).RollbackService)
}

// newServiceActionCmd is a command that asks one thing of a service and
// then waits for it to converge, like `service update`.
func newServiceActionCmd(g *globals, use, short string, act func(*client.Client, context.Context, string) (*client.WriteResult, error)) *cobra.Command {
	var w waitOpts
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := ctxTimeout(30 * time.Second)
			defer cancel()
			begin := time.Now()
			res, err := act(c, ctx, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, args[0])
			if w.detach {
				return nil
			}
			return waitMoved(g, c, args[0], w, res.Generation, res.Index, begin)
		},
	}
	addWaitFlags(cmd.Flags(), &w)
	return cmd
}

// waitMoved waits for the service to converge and says when the change
// written at index, then the converged service, is in effect on every node.
func waitMoved(g *globals, c *client.Client, ref string, w waitOpts, generation, index uint64, begin time.Time) error {
	if !w.quiet {
		reportTables(g, c, "change", index, begin)
	}
	if err := waitConverged(g, c, ref, generation, w); err != nil {
		return err
	}
	if w.quiet {
		return nil
	}
	ctx, cancel := ctxTimeout(15 * time.Second)
	tb, err := c.Tables(ctx)
	cancel()
	if err == nil {
		reportTables(g, c, "traffic on the converged service", tb.Index, time.Now())
	}
	return nil
}

// waitConverged polls the service until the orchestrator reports it
// converged for the write that returned generation (or the rollout paused),
// printing progress: a redrawn per-task view on a terminal, one line per
// change otherwise.
func waitConverged(g *globals, c *client.Client, ref string, generation uint64, w waitOpts) error {
	deadline := time.Now().Add(w.timeout)
	var last string
	tty := isTerminal(g.stderr)
	drawn := 0
	var pulls client.PullView
	names := map[string]string{} // node hostnames, looked up when a pull shows
	printed := map[string]string{}
	for {
		ctx, cancel := ctxTimeout(15 * time.Second)
		svc, err := c.Service(ctx, ref)
		if err != nil {
			cancel()
			return err
		}
		tasks, err := c.Tasks(ctx, client.TaskFilter{Service: svc.ID})
		cancel()
		if err != nil {
			return err
		}
		p := client.ProgressOf(*svc, tasks, generation)
		var pullLines []client.PullLine
		if !w.quiet {
			lookUpNodes(c, p.Pulls, names)
			pullLines = pulls.Lines(*svc, tasks, names)
		}
		switch {
		case w.quiet:
		case tty:
			// Redraw one line per task under the summary, like docker.
			view := p.String() + "\n"
			for _, l := range pullLines {
				view += "  " + l.Text + "\n"
			}
			view += taskLines(*svc, tasks)
			if view != last {
				fmt.Fprint(g.stderr, strings.Repeat("\033[1A\033[2K", drawn)+view)
				drawn = strings.Count(view, "\n")
				last = view
			}
		default:
			if line := p.String(); line != last {
				fmt.Fprintln(g.stderr, line)
				last = line
			}
			for _, l := range pullLines {
				if printed[l.Key] != l.Text {
					fmt.Fprintln(g.stderr, l.Text)
					printed[l.Key] = l.Text
				}
			}
		}
		switch {
		case p.Stopped != "":
			return &exitError{code: 1, err: fmt.Errorf("service %s: %s", svc.Spec.Name, p.Stopped)}
		case p.Done && w.failOnRollback && p.Update == api.UpdateRolledBack:
			return &exitError{code: 1, err: fmt.Errorf("service %s: %s", svc.Spec.Name, p.Message)}
		case p.Done:
			return nil
		}
		if time.Now().After(deadline) {
			return &exitError{code: 3, err: fmt.Errorf("service %s did not converge within %s: %s", svc.Spec.Name, w.timeout, p.Problem())}
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// lookUpNodes adds the hostnames of nodes pulling that names lacks; a
// node the lookup does not answer for is named by its ID from then on, so
// the progress loop asks once, not at every poll.
func lookUpNodes(c *client.Client, pulls []client.NodePull, names map[string]string) {
	missing := false
	for _, p := range pulls {
		if _, ok := names[p.NodeID]; !ok {
			missing = true
		}
	}
	if !missing {
		return
	}
	ctx, cancel := ctxTimeout(15 * time.Second)
	nodes, _ := c.Nodes(ctx)
	cancel()
	for id, name := range client.NodeNames(nodes) {
		names[id] = name
	}
	for _, p := range pulls {
		if _, ok := names[p.NodeID]; !ok {
			names[p.NodeID] = ""
		}
	}
}

// taskLines is the per-task part of the terminal progress view.
func taskLines(s api.Service, tasks []api.Task) string {
	cur := currentTasks(tasks)
	sortTasks(cur)
	var b strings.Builder
	for _, t := range cur {
		if t.ServiceID != s.ID || t.DesiredState != api.TaskRunning {
			continue
		}
		state := string(t.Status.State)
		if t.Status.Health != "" {
			state += " (" + string(t.Status.Health) + ")"
		}
		if t.Status.State == api.TaskPending && t.Status.Message != "" {
			state += ": " + t.Status.Message
		} else if t.Status.Err != "" {
			state += ": " + t.Status.Err
		}
		fmt.Fprintf(&b, "  %-12s %s\n", client.TaskName(t), state)
	}
	return b.String()
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
