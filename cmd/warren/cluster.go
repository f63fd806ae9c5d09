package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/manager"
)

func newClusterCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Create, join and inspect the cluster (like docker swarm)"}
	cmd.AddCommand(newClusterInitCmd(g), newClusterJoinCmd(g), newClusterInfoCmd(g), newJoinTokenCmd(g), newClusterLeaveCmd(g),
		newClusterUpdateCmd(g), newClusterUnlockCmd(g), newClusterUnlockKeyCmd(g))
	return cmd
}

func newManagerCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "manager", Short: "Run this node's manager"}
	var o nodeOpts
	run := &cobra.Command{
		Use:   "run",
		Short: "Resume the manager (and its node agent) whose state is in --data-dir",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if !manager.Initialized(g.dataDir) {
				return fmt.Errorf("%s holds no node: run `warren cluster init` or `warren cluster join` first", g.dataDir)
			}
			return runNode(g, &o, nodeStart{})
		},
	}
	addNodeFlags(run.Flags(), &o)
	cmd.AddCommand(run)
	return cmd
}

// nodeOpts are the flags of every command that starts this node's daemon.
type nodeOpts struct {
	// raftTimeout is raft's heartbeat and election timeout (the leader
	// lease is half of it).
	raftTimeout time.Duration
	// planQuiet and planMaxDelay coalesce bursts of writes into one plan.
	planQuiet, planMaxDelay time.Duration
	listenAddr              string
	advertiseAddr           string
	managerOnly             bool
	detach                  bool

	// raftSnapshotThreshold and raftSnapshotInterval tune how often a
	// manager snapshots its store (0: raft's defaults).
	raftSnapshotThreshold uint64
	raftSnapshotInterval  time.Duration
	raftTrailingLogs      uint64

	containerdSock string
	containerdNS   string
	cgroupParent   string
	dataplane      string
	wireguard      string
	wgIface        string
	wgPort         uint16
	bridge         string
	metricsAddr    string
	labels         []string
	hostLB         bool
	registryPull   bool
	platform       string
	imageGCGrace   time.Duration
	agentAddr      string
	uplink         string
	routingMesh    bool
	auditStdout    bool
	heartbeat      time.Duration

	podCIDR, serviceCIDR, domain string
	nodeDownGrace                time.Duration
	autolock                     bool
}

func addNodeFlags(fs *pflag.FlagSet, o *nodeOpts) {
	fs.StringVar(&o.listenAddr, "listen-addr", envOr("WARREN_LISTEN_ADDR", ":2377"), "API and raft listen address (managers) [$WARREN_LISTEN_ADDR]")
	fs.StringVar(&o.advertiseAddr, "advertise-addr", envOr("WARREN_ADVERTISE_ADDR", ""), "address other nodes reach this node at, IP[:PORT] (default: the address of the default route) [$WARREN_ADVERTISE_ADDR]")
	fs.BoolVar(&o.managerOnly, "manager-only", false, "do not run tasks on this manager")
	fs.BoolVarP(&o.detach, "detach", "d", false, "run in the background (logs in <data-dir>/warren.log)")
	fs.StringVar(&o.containerdSock, "containerd", envOr("WARREN_CONTAINERD", "/run/containerd/containerd.sock"), "containerd socket [$WARREN_CONTAINERD]")
	fs.StringVar(&o.containerdNS, "containerd-namespace", envOr("WARREN_CONTAINERD_NAMESPACE", "warren"), "containerd namespace for this node's containers [$WARREN_CONTAINERD_NAMESPACE]")
	fs.StringVar(&o.cgroupParent, "cgroup-parent", envOr("WARREN_CGROUP_PARENT", "warren"), "cgroup parent of this node's containers [$WARREN_CGROUP_PARENT]")
	fs.StringVar(&o.dataplane, "dataplane", envOr("WARREN_DATAPLANE", "auto"), "service load balancer: ebpf, proxy or auto [$WARREN_DATAPLANE]")
	fs.StringVar(&o.wireguard, "wireguard", envOr("WARREN_WIREGUARD", "auto"), "WireGuard implementation: kernel, userspace or auto [$WARREN_WIREGUARD]")
	fs.StringVar(&o.wgIface, "wireguard-interface", envOr("WARREN_WIREGUARD_INTERFACE", "warren-wg"), "WireGuard interface name (unique per machine) [$WARREN_WIREGUARD_INTERFACE]")
	fs.Uint16Var(&o.wgPort, "wireguard-port", 51820, "WireGuard UDP port")
	fs.StringVar(&o.bridge, "bridge", envOr("WARREN_BRIDGE", "warren0"), "bridge for this node's containers [$WARREN_BRIDGE]")
	fs.StringVar(&o.metricsAddr, "metrics-addr", envOr("WARREN_METRICS_ADDR", "127.0.0.1:9323"), "Prometheus /metrics and /healthz listener (plain HTTP) [$WARREN_METRICS_ADDR]")
	fs.StringArrayVar(&o.labels, "label", nil, "node label KEY=VALUE reported by this node")
	fs.StringVar(&o.agentAddr, "agent-listen-addr", envOr("WARREN_AGENT_LISTEN_ADDR", ":2378"), "the node's own mTLS listener, from which managers stream task logs [$WARREN_AGENT_LISTEN_ADDR]")
	fs.StringVar(&o.uplink, "uplink", envOr("WARREN_UPLINK", ""), "interface on which published ports answer other hosts (default: the one holding the advertise address) [$WARREN_UPLINK]")
	fs.BoolVar(&o.routingMesh, "routing-mesh", envOr("WARREN_ROUTING_MESH", "true") == "true", "publish ports on every node for other hosts, in the kernel (TCX) [$WARREN_ROUTING_MESH]")
	fs.BoolVar(&o.registryPull, "registry-pull", envOr("WARREN_REGISTRY_PULL", "true") == "true", "pull images from registries when no manager holds them (false for air-gapped sites) [$WARREN_REGISTRY_PULL]")
	fs.StringVar(&o.platform, "platform", envOr("WARREN_PLATFORM", ""), "tests only: report and pull as this os/arch[/variant] instead of the host's, to play a node of another architecture [$WARREN_PLATFORM]")
	fs.DurationVar(&o.imageGCGrace, "image-gc-grace", envGrace("WARREN_IMAGE_GC_GRACE", 24*time.Hour), "remove a node's images no container has used for this long (0: never) [$WARREN_IMAGE_GC_GRACE]")
	fs.BoolVar(&o.auditStdout, "audit-stdout", envOr("WARREN_AUDIT_STDOUT", "false") == "true", "managers: copy every audit line (<data-dir>/audit.log) to stdout [$WARREN_AUDIT_STDOUT]")
	fs.DurationVar(&o.heartbeat, "heartbeat-interval", 2*time.Second, "how often the node heartbeats to the managers; keep it well under the cluster's --node-down-grace (15× by default)")
	fs.DurationVar(&o.raftTimeout, "raft-timeout", envDuration("WARREN_RAFT_TIMEOUT", 500*time.Millisecond), "managers: raft heartbeat and election timeout; a killed leader is replaced within about 3× this, and a manager that cannot answer within it is voted out (raise it on overloaded machines) [$WARREN_RAFT_TIMEOUT]")
	fs.Uint64Var(&o.raftSnapshotThreshold, "raft-snapshot-threshold", 0, "managers, tuning: snapshot the store once this many raft log entries are past the last snapshot (0: raft's default, 8192); lower means smaller logs and more frequent snapshot writes")
	fs.DurationVar(&o.raftSnapshotInterval, "raft-snapshot-interval", 0, "managers, tuning: how often raft checks the snapshot threshold, with up to as much again of jitter (0: raft's default, 2m)")
	fs.Uint64Var(&o.raftTrailingLogs, "raft-trailing-logs", 0, "managers, tuning: raft log entries kept after a snapshot, so a briefly absent manager catches up from the log instead of a whole snapshot (0: raft's default, 10240)")
	fs.DurationVar(&o.planQuiet, "plan-quiet", envSignedDuration("WARREN_PLAN_QUIET", manager.DefaultPlanQuiet), "managers: the leader plans once writes have paused for this long (0: after every write) [$WARREN_PLAN_QUIET]")
	fs.DurationVar(&o.planMaxDelay, "plan-max-delay", envDuration("WARREN_PLAN_MAX_DELAY", manager.DefaultPlanMaxDelay), "managers: the longest a steady stream of writes delays the leader's plan [$WARREN_PLAN_MAX_DELAY]")
	fs.BoolVar(&o.hostLB, "host-lb", envOr("WARREN_HOST_LB", "true") == "true", "let host processes reach VIPs and localhost:PUBLISHED (attach to the host's root cgroup; one node per machine) [$WARREN_HOST_LB]")
}

func addInitFlags(fs *pflag.FlagSet, o *nodeOpts) {
	fs.StringVar(&o.podCIDR, "pod-cidr", "10.42.0.0/16", "address range for containers (a /24 per node)")
	fs.StringVar(&o.serviceCIDR, "service-cidr", "10.43.0.0/16", "address range for service virtual IPs")
	fs.StringVar(&o.domain, "domain", "warren.local", "DNS domain of services")
	fs.DurationVar(&o.nodeDownGrace, "node-down-grace", 30*time.Second, "how long a node may miss heartbeats before its tasks are moved")
	fs.BoolVar(&o.autolock, "autolock", false, "managers need `warren cluster unlock` with the unlock key (printed once) after a restart")
}

// nodeStart says how runNode brings the node up when its data dir is empty.
type nodeStart struct {
	init      bool
	joinAddr  string
	joinToken string
}

func newClusterInitCmd(g *globals) *cobra.Command {
	var o nodeOpts
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a new cluster with this machine as its first manager",
		Long: `Create a new cluster: this machine becomes its first manager (and, unless --manager-only,
runs tasks too). It creates the cluster CA and prints the commands other machines run to join.
Run in the foreground (systemd-friendly) or with --detach. Running it again on the same data
directory resumes the node; it never re-creates the cluster.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return runNode(g, &o, nodeStart{init: true})
		},
	}
	addNodeFlags(cmd.Flags(), &o)
	addInitFlags(cmd.Flags(), &o)
	return cmd
}

func newClusterJoinCmd(g *globals) *cobra.Command {
	var o nodeOpts
	var token string
	cmd := &cobra.Command{
		Use:     "join --token TOKEN MANAGER_ADDR",
		Short:   "Join this machine to a cluster as a worker or a manager (the token decides)",
		Example: `  warren cluster join --token WRN-1-… 10.0.0.1:2377`,
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if token == "" && !manager.Initialized(g.dataDir) {
				return fmt.Errorf("--token is required (get it with `warren cluster join-token worker` on a manager)")
			}
			addr := args[0]
			if _, _, err := net.SplitHostPort(addr); err != nil {
				addr = net.JoinHostPort(addr, "2377")
			}
			return runNode(g, &o, nodeStart{joinAddr: addr, joinToken: token})
		},
	}
	addNodeFlags(cmd.Flags(), &o)
	cmd.Flags().StringVar(&token, "token", envOr("WARREN_JOIN_TOKEN", ""), "join token WRN-1-<ca digest>-<secret> [$WARREN_JOIN_TOKEN]")
	return cmd
}

func newClusterInfoCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "info",
		Short: "Show the cluster: ID, managers and leader, address ranges",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := ctxTimeout(15 * time.Second)
			defer cancel()
			info, err := c.Info(ctx)
			if err != nil {
				return err
			}
			return g.printer().object(info, func(tw *tabwriter.Writer) {
				row(tw, "Cluster ID:", info.ID)
				row(tw, "Created:", info.CreatedAt.Format(time.RFC3339))
				row(tw, "CA digest:", info.CADigest)
				row(tw, "Pod range:", info.Network.PodCIDR)
				row(tw, "Service range:", info.Network.ServiceCIDR)
				row(tw, "Domain:", info.Network.Domain)
				row(tw, "Raft index:", info.Index)
				for _, m := range info.Managers {
					role := "follower"
					if m.Leader {
						role = "leader"
					} else if !m.Voter {
						role = "joining"
					}
					row(tw, "Manager:", shortID(m.NodeID), m.RaftAddr, role)
				}
			})
		},
	}
}

func newJoinTokenCmd(g *globals) *cobra.Command {
	var rotate bool
	var quiet bool
	cmd := &cobra.Command{
		Use:   "join-token worker|manager",
		Short: "Show the command to join a worker or a manager; --rotate invalidates the old token",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			role := args[0]
			if role != "worker" && role != "manager" {
				return fmt.Errorf("join-token: %q: must be worker or manager", role)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := ctxTimeout(15 * time.Second)
			defer cancel()
			token := ""
			if rotate {
				ti, err := c.RotateJoinToken(ctx, role, 0)
				if err != nil {
					return err
				}
				token = ti.Token
			} else {
				tis, err := c.JoinTokens(ctx)
				if err != nil {
					return err
				}
				for _, ti := range tis {
					if ti.Role == role {
						token = ti.Token
					}
				}
				if token == "" {
					return fmt.Errorf("the %s token cannot be shown; issue a new one with `warren cluster join-token %s --rotate`", role, role)
				}
			}
			if quiet {
				fmt.Fprintln(g.stdout, token)
				return nil
			}
			info, err := c.Info(ctx)
			if err != nil {
				return err
			}
			addr := ""
			for _, m := range info.Managers {
				if m.Leader || addr == "" {
					addr = m.APIAddr
					if addr == "" {
						addr = m.RaftAddr
					}
				}
			}
			fmt.Fprintf(g.stdout, "To add a %s to this cluster, run this on it:\n\n    warren cluster join --token %s %s\n\n", role, token, addr)
			return nil
		},
	}
	cmd.Flags().BoolVar(&rotate, "rotate", false, "issue a new token; the old one stops working")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print the token only")
	return cmd
}

// detach re-executes this command in the background with its output in
// <data-dir>/warren.log and returns once the node's API socket answers.
func detach(g *globals, showJoin bool) error {
	_, statErr := os.Stat(g.dataDir)
	created := errors.Is(statErr, os.ErrNotExist)
	if err := os.MkdirAll(g.dataDir, 0o700); err != nil {
		return err
	}
	logPath := filepath.Join(g.dataDir, "warren.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var args []string
	for _, a := range os.Args[1:] {
		if a == "--detach" || a == "-d" || a == "--detach=true" {
			continue
		}
		args = append(args, a)
	}
	cmd := exec.Command(self, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	sock := socketPath(g.dataDir)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			if _, idErr := manager.LoadIdentity(g.dataDir); created && errors.Is(idErr, os.ErrNotExist) {
				// It never became a node: say why, and leave nothing behind.
				b, _ := os.ReadFile(logPath)
				os.RemoveAll(g.dataDir)
				return fmt.Errorf("warren exited during start (%v):\n%s", err, tail(string(b), 20))
			}
			return fmt.Errorf("warren exited during start (%v); see %s", err, logPath)
		case <-time.After(100 * time.Millisecond):
		}
		if conn, err := net.Dial("unix", sock); err == nil {
			conn.Close()
			fmt.Fprintf(g.stdout, "warren is running in the background (pid %d); logs: %s\n", cmd.Process.Pid, logPath)
			if showJoin {
				showJoinCommands(g)
			}
			return nil
		}
	}
	return fmt.Errorf("warren did not become ready within 60s; see %s", logPath)
}

// signalContext ends on SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// defaultAdvertise picks the first IPv4 address of the interface that
// holds the default route (from /proc/net/route), else of the first
// non-loopback interface that is up.
func defaultAdvertise(port string) (string, error) {
	ifname := ""
	if b, err := os.ReadFile("/proc/net/route"); err == nil {
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 2 && f[1] == "00000000" {
				ifname = f[0]
				break
			}
		}
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	for _, want := range []bool{true, false} {
		for _, ifc := range ifs {
			if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || (want && ifc.Name != ifname) {
				continue
			}
			addrs, _ := ifc.Addrs()
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
					return net.JoinHostPort(ipn.IP.String(), port), nil
				}
			}
		}
	}
	return "", errors.New("cannot find this machine's address: pass --advertise-addr")
}

func normalizeAdvertise(adv, listen string) (string, error) {
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("--listen-addr %q: %w", listen, err)
	}
	if adv == "" {
		return defaultAdvertise(port)
	}
	if _, _, err := net.SplitHostPort(adv); err != nil {
		if net.ParseIP(adv) == nil {
			return "", fmt.Errorf("--advertise-addr %q: must be IP or IP:PORT", adv)
		}
		adv = net.JoinHostPort(adv, port)
	}
	return adv, nil
}

// showJoinCommands prints how to add workers and managers, as `cluster init`
// does in the foreground. Best effort: the node is up either way.
func showJoinCommands(g *globals) {
	c, err := g.client()
	if err != nil {
		return
	}
	ctx, cancel := ctxTimeout(30 * time.Second)
	defer cancel()
	var tis []client.TokenInfo
	for ctx.Err() == nil { // the first leader election may still be running
		if tis, err = c.JoinTokens(ctx); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	info, err := c.Info(ctx)
	if err != nil || len(info.Managers) == 0 {
		return
	}
	addr := info.Managers[0].APIAddr
	for _, ti := range tis {
		if ti.Token != "" {
			fmt.Fprintf(g.stdout, "\nTo add a %s to this cluster, run this on it:\n\n    warren cluster join --token %s %s\n", ti.Role, ti.Token, addr)
		}
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// envSignedDuration is envDuration that also takes zero and negative
// values, for settings where those mean "off".
func envSignedDuration(key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(key)); err == nil {
		return d
	}
	return def
}
