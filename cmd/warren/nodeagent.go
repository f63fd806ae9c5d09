package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/containerd/platforms"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/agent"
	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/ca"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/manager"
	"github.com/warrenhq/warren/dataplane/nodenet"
	"github.com/warrenhq/warren/runtime"
	rtc "github.com/warrenhq/warren/runtime/containerd"
	"github.com/warrenhq/warren/runtime/ociimage"
)

// nodeAgent is everything a node runs for its tasks: the agent (manager
// side), the containerd worker, and the network (CNI, mesh, DNS, dataplane).
type nodeAgent struct {
	log     *zap.Logger
	agent   *agent.Agent
	worker  *runtime.Worker
	exec    *rtc.Executor
	net     *nodenet.Sink
	renewer *ca.Renewer
	roles   *roleWatcher
	isMgr   bool
	logSrv  *http.Server
	traffic *nodenet.Traffic // nil where TCX is unavailable
	// imageGCGrace: images no container used for this long are removed (0: never).
	imageGCGrace time.Duration
}

func startAgent(ctx context.Context, g *globals, o *nodeOpts, log *zap.Logger, ident *manager.NodeIdentity, adv, hostname string, reg *prometheus.Registry) (*nodeAgent, error) {
	n := &nodeAgent{log: log.With(zap.String("component", "agent")), isMgr: ident.Role == api.RoleManager, imageGCGrace: o.imageGCGrace}
	mc, certs, verifier, err := managerClient(g.dataDir, ident)
	if err != nil {
		return nil, err
	}
	if !n.isMgr {
		n.renewer = &ca.Renewer{
			Store: certs, Dir: filepath.Join(g.dataDir, manager.CertsDir), Clock: ca.SystemClock{}, Rand: rand.Reader,
			Log: log.With(zap.String("component", "cert-renewal")),
			Renew: func(ctx context.Context, csrPEM []byte) ([]byte, error) {
				r, err := mc.RenewCert(ctx, string(csrPEM))
				if err != nil {
					return nil, err
				}
				return []byte(r.CertPEM), nil
			},
		}
	}

	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	taskNet, err := nodenet.SetupCNI(nodenet.CNIOptions{DataDir: g.dataDir, Bridge: o.bridge, Plugin: self, Network: ident.Network})
	if err != nil {
		return nil, err
	}

	// Volumes: local directories and plugins, among them this binary as
	// the sshfs driver.
	vols, err := newVolumes(g.dataDir, ident.NodeID, self, log)
	if err != nil {
		return nil, err
	}

	plat := platforms.DefaultSpec()
	if o.platform != "" {
		if plat, err = platforms.Parse(o.platform); err != nil {
			return nil, fmt.Errorf("--platform %q: %w", o.platform, err)
		}
	}
	// The executor and the worker are made before the agent they report
	// to and ask for pull credentials; ag is set once it exists.
	var ag atomic.Pointer[agent.Agent]
	exec, err := rtc.New(rtc.Options{
		Address: o.containerdSock, Namespace: o.containerdNS, CgroupParent: o.cgroupParent,
		NodeID: ident.NodeID, Network: taskNet,
		ImageFetcher: func(ctx context.Context, ref string) (io.ReadCloser, error) {
			// Managers keep images under their fully qualified names.
			rc, err := mc.DownloadImage(ctx, ociimage.NormalizeRef(ref))
			if client.StatusOf(err) == http.StatusNotFound {
				// Not loaded into the cluster: what every registry image is.
				return nil, fmt.Errorf("%w: %w", runtime.ErrNotFound, err)
			}
			return rc, err
		},
		VolumeDir:   filepath.Join(g.dataDir, "volumes"),
		Volumes:     vols,
		DisablePull: !o.registryPull,
		Platform:    o.platform,
		PullAuth: func(taskID string) *api.PullAuth {
			if a := ag.Load(); a != nil {
				return a.PullAuth(taskID)
			}
			return nil
		},
		ResolvConf: taskNet.ResolvConf,
		Logger:     log.With(zap.String("component", "runtime")),
	})
	if err != nil {
		return nil, fmt.Errorf("containerd at %s: %w", o.containerdSock, err)
	}
	n.exec = exec

	worker, err := runtime.NewWorker(runtime.WorkerOptions{
		Executor: exec, DataDir: g.dataDir, Logger: log.With(zap.String("component", "worker")),
		// One log path for the node (no log process per task).
		CollectLogs: true,
		Reporter: func(taskID string, st api.TaskStatus) {
			if a := ag.Load(); a != nil {
				a.Report(taskID, st)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	n.worker = worker
	reg.MustRegister(worker.Collector())

	// The node's cgroup must exist before the dataplane attaches to it.
	if p := exec.CgroupV2Path(); p != "" {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return nil, fmt.Errorf("node cgroup %s: %w", p, err)
		}
	}
	if err := ensureBPFFS(); err != nil {
		n.log.Warn("bpffs", zap.Error(err))
	}
	sink, err := nodenet.NewSink(nodenet.SinkOptions{
		NodeID: ident.NodeID, Addr: ident.Addr, Network: ident.Network, DataDir: g.dataDir, Cgroup: exec.CgroupV2Path(),
		WireGuard: o.wireguard, WGIface: o.wgIface, WGPort: o.wgPort,
		Dataplane: o.dataplane, HostLB: o.hostLB, Uplink: o.uplink, RoutingMesh: o.routingMesh,
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	n.net = sink
	if c := sink.Collector(); c != nil {
		reg.MustRegister(c)
	}

	if tc, err := nodenet.NewTraffic(ident.NodeID, worker.Tasks, n.log); err != nil {
		n.log.Info("per-task network counters unavailable", zap.Error(err))
	} else {
		n.traffic = tc
		reg.MustRegister(tc.Collector())
	}

	mayReadLogs := func(nodeID string) error {
		if a := ag.Load(); a != nil {
			return a.MayReadLogs(nodeID)
		}
		return nil // still starting: the certificate's role decides
	}
	logSrv, err := serveNodeLogs(o.agentAddr, verifier, certs, worker, mayReadLogs, log)
	if err != nil {
		return nil, fmt.Errorf("node listener %s: %w", o.agentAddr, err)
	}
	n.logSrv = logSrv
	_, agentPort, _ := net.SplitHostPort(o.agentAddr)
	sink.SetAgentAddr(net.JoinHostPort(ident.Addr, agentPort))

	labels, err := parseKV("--label", o.labels)
	if err != nil {
		return nil, err
	}
	a, err := agent.New(agent.Config{
		NodeID: ident.NodeID, DataDir: g.dataDir, Manager: mc, Managers: ident.Managers,
		Executor: worker, Network: sink, Secrets: newSecretFS(ident.NodeID, n.log),
		Registration: withVolumeDrivers(registration(ident, hostname, labels, plat, sink.NodeNetwork), vols),
		Logger:       n.log, Heartbeat: o.heartbeat,
		Peers: peerHealth(sink),
	})
	if err != nil {
		return nil, err
	}
	reg.MustRegister(agent.NewCollector(a))
	ag.Store(a)
	n.agent = a
	n.roles = &roleWatcher{log: n.log, dataDir: g.dataDir, ident: ident, agent: a, mc: mc, apiAddr: manager.PromotedAPIAddr(*ident, o.listenAddr)}
	return n, nil
}

// Run runs the agent, the worker's housekeeping and certificate renewal.
func (n *nodeAgent) Run(ctx context.Context) error {
	go func() {
		if err := n.worker.Run(ctx); err != nil && ctx.Err() == nil {
			n.log.Error("worker stopped", zap.Error(err))
		}
	}()
	if n.renewer != nil {
		go func() { _ = n.renewer.Run(ctx) }()
	}
	go n.roles.run(ctx)
	if n.traffic != nil {
		go n.traffic.Run(ctx)
	}
	if g := n.imageGCGrace; g > 0 {
		go n.exec.RunImageGC(ctx, g, min(g/2, 10*time.Minute))
	}
	go n.net.RunProbes(ctx)
	return n.agent.Run(ctx)
}

// peerHealth hands the network's probe records to the agent, which judges
// them while the node is cut off.
func peerHealth(sink *nodenet.Sink) func() map[string]agent.PeerHealth {
	return func() map[string]agent.PeerHealth {
		in := sink.PeerHealth()
		out := make(map[string]agent.PeerHealth, len(in))
		for id, h := range in {
			out[id] = agent.PeerHealth{Since: h.Since, LastOK: h.LastOK}
		}
		return out
	}
}

// Close stops the agent side. Containers keep running: the next start adopts them.
func (n *nodeAgent) Close() {
	n.logSrv.Close()
	if n.traffic != nil {
		n.traffic.Close()
	}
	n.worker.Close()
	n.agent.Close()
	n.net.Close()
	n.exec.Close()
}
