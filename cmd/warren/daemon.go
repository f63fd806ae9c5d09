package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"time"

	clog "github.com/containerd/log"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/ca"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/manager"
	"github.com/warrenhq/warren/controlplane/memlimit"
	"github.com/warrenhq/warren/dataplane/nodenet"
	"github.com/warrenhq/warren/runtime/registry"
)

// runNode is the daemon: it brings this node's identity up (init, join or
// resume), runs the manager when the node is one, and the node agent unless
// --manager-only. It returns when SIGINT/SIGTERM arrives.
func runNode(g *globals, o *nodeOpts, start nodeStart) error {
	if o.detach {
		return detach(g, start.init)
	}
	log, err := newLogger(g.logLevel, g.logFormat, g.stderr)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck
	// The containerd client logs through logrus; keep its chatter (registry
	// lookups, shim plugins) out of warren's JSON log.
	_ = clog.SetLevel("warn")
	ctx, cancel := signalContext()
	defer cancel()
	go memlimit.Run(ctx)
	go memlimit.TrimBinaryEvery(ctx)
	// A start that fails before this node has an identity leaves no half a
	// node behind: the data dir goes if this start created it.
	undo := func() {}
	if _, err := os.Stat(g.dataDir); errors.Is(err, os.ErrNotExist) {
		undo = func() { os.RemoveAll(g.dataDir) }
	}
	removePid, err := writePidFile(g.dataDir)
	if err != nil {
		return err
	}
	defer removePid()

	adv, err := normalizeAdvertise(o.advertiseAddr, o.listenAddr)
	if err != nil {
		return err
	}
	hostname, _ := os.Hostname()

	var mgr *manager.Manager
	ident, err := manager.LoadIdentity(g.dataDir)
	switch {
	case err == nil && ident.Role == api.RoleManager:
		mgr, err = openManager(ctx, g, o, log, adv, hostname, nil)
	case err == nil:
		// A worker resumes from its data dir.
	case !errors.Is(err, os.ErrNotExist):
		return err
	case start.init:
		mgr, err = openManager(ctx, g, o, log, adv, hostname, nil)
	case start.joinAddr != "":
		ident, err = joinAsWorker(ctx, g.dataDir, start, adv, hostname)
		if isWrongRole(err) {
			mgr, err = openManager(ctx, g, o, log, adv, hostname, &manager.JoinOptions{Addr: start.joinAddr, Token: start.joinToken})
		}
	default:
		undo()
		return fmt.Errorf("%s holds no node: run `warren cluster init` or `warren cluster join`", g.dataDir)
	}
	if err != nil {
		if _, idErr := manager.LoadIdentity(g.dataDir); errors.Is(idErr, os.ErrNotExist) {
			undo()
		}
		return err
	}
	if mgr != nil {
		defer mgr.Close()
		id := mgr.Identity()
		ident = &id
		if r := mgr.InitResult(); r != nil {
			printJoinCommands(g, r, adv)
			if r.UnlockKey != "" {
				printUnlockKey(g, r.UnlockKey)
			}
		}
	}
	log = log.With(zap.String("node_id", ident.NodeID))

	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	if mgr != nil {
		reg.MustRegister(manager.NewCollector(mgr))
	}

	errc := make(chan error, 3)
	if mgr != nil {
		go func() { errc <- mgr.Serve(ctx) }()
	}
	var node *nodeAgent
	if !(mgr != nil && o.managerOnly) {
		node, err = startAgent(ctx, g, o, log, ident, adv, hostname, reg)
		if err != nil {
			return err
		}
		defer node.Close()
		go func() { errc <- node.Run(ctx) }()
	}
	msrv := serveMetrics(o.metricsAddr, reg, log)
	defer msrv.Close()

	log.Info("warren node running", zap.String("role", string(ident.Role)), zap.String("advertise", adv), zap.String("version", version))
	select {
	case <-ctx.Done():
		log.Info("shutting down")
		return nil
	case err := <-errc:
		return err
	}
}

// isWrongRole reports whether a worker join was refused because the token
// is a manager token (the server's message carries ca.ErrTokenWrongRole).
func isWrongRole(err error) bool {
	var ae *client.APIError
	return errors.As(err, &ae) && strings.Contains(ae.Error(), ca.ErrTokenWrongRole.Error())
}

func openManager(ctx context.Context, g *globals, o *nodeOpts, log *zap.Logger, adv, hostname string, join *manager.JoinOptions) (*manager.Manager, error) {
	cfg := manager.Config{
		DataDir:          g.dataDir,
		ListenAddr:       o.listenAddr,
		AdvertiseAddr:    adv,
		Hostname:         hostname,
		Logger:           log,
		Join:             join,
		OnRemoved:        becomeWorker(log),
		HeartbeatTimeout: o.raftTimeout, ElectionTimeout: o.raftTimeout, LeaderLeaseTimeout: o.raftTimeout / 2,
		SnapshotThreshold: o.raftSnapshotThreshold, SnapshotInterval: o.raftSnapshotInterval, TrailingLogs: o.raftTrailingLogs,
		PlanQuiet: o.planQuiet, PlanMaxDelay: o.planMaxDelay,
	}
	if o.planQuiet <= 0 {
		cfg.PlanQuiet = -1 // the manager's zero means its default
	}
	if o.registryPull {
		// Air-gapped sites (--registry-pull=false) have no registry to ask.
		cfg.Images = &registry.Resolver{}
	}
	if join == nil {
		cfg.Init = &manager.InitOptions{
			PodCIDR: o.podCIDR, ServiceCIDR: o.serviceCIDR, Domain: o.domain,
			WGPort: o.wgPort, NodeDownGrace: o.nodeDownGrace, Autolock: o.autolock,
		}
	}
	return manager.Open(ctx, cfg)
}

func printJoinCommands(g *globals, r *manager.InitResult, adv string) {
	fmt.Fprintf(g.stdout, `Cluster %s initialised; this node is its first manager.

To add a worker to this cluster, run this on it:

    warren cluster join --token %s %s

To add a manager, run:

    warren cluster join --token %s %s

Administrator credentials for the CLI on other machines are in %s.
`, r.ClusterID, r.WorkerToken, adv, r.ManagerToken, adv, filepath.Join(g.dataDir, manager.AdminDir))
}

// joinAsWorker pins the CA by the token's digest, sends a CSR with the
// token, and saves the node's identity. The private key never leaves.
func joinAsWorker(ctx context.Context, dataDir string, start nodeStart, adv, hostname string) (*manager.NodeIdentity, error) {
	host, _, _ := net.SplitHostPort(adv)
	resp, _, _, err := manager.Enroll(ctx, dataDir, start.joinAddr, start.joinToken, client.JoinRequest{
		Role: string(api.RoleWorker), Hostname: hostname, Addr: host,
	})
	if err != nil {
		return nil, err
	}
	id := &manager.NodeIdentity{NodeID: resp.NodeID, Role: api.RoleWorker, Managers: resp.Managers, Addr: host, Network: resp.Network}
	if err := manager.SaveIdentity(dataDir, id); err != nil {
		return nil, err
	}
	return id, nil
}

// managerClient is the node's mTLS client to the managers, with its own
// manager first when it is one.
func managerClient(dataDir string, ident *manager.NodeIdentity) (*client.Client, *ca.CertStore, *ca.CA, error) {
	certs, err := ca.LoadCertStore(filepath.Join(dataDir, manager.CertsDir))
	if err != nil {
		return nil, nil, nil, err
	}
	caPEM, err := os.ReadFile(filepath.Join(dataDir, manager.CertsDir, manager.CAFile))
	if err != nil {
		return nil, nil, nil, err
	}
	verifier, err := ca.LoadVerifier(caPEM)
	if err != nil {
		return nil, nil, nil, err
	}
	addrs := ident.Managers
	if ident.APIAddr != "" {
		addrs = append([]string{ident.APIAddr}, addrs...)
	}
	c, err := client.New(client.Config{Addrs: addrs, TLS: ca.ClientConfig(verifier, certs, ca.ManagerServerName)})
	return c, certs, verifier, err
}

func serveMetrics(addr string, reg *prometheus.Registry, log *zap.Logger) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	// Profiles on the same localhost listener, only when asked for: the
	// scale bench (bench/sim) profiles the leader under load this way.
	if os.Getenv("WARREN_PPROF") == "1" {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	}
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics listener", zap.String("addr", addr), zap.Error(err))
		}
	}()
	return srv
}

// registration describes this node for heartbeats.
func registration(ident *manager.NodeIdentity, hostname string, labels map[string]string, plat ocispec.Platform, netw func() api.NodeNetwork) func() api.NodeRegistration {
	capacity := nodenet.HostCapacity() // read once: it does not change while warren runs
	return func() api.NodeRegistration {
		return api.NodeRegistration{
			NodeID: ident.NodeID, Hostname: hostname, Addr: ident.Addr,
			OS: plat.OS, Arch: plat.Architecture, Variant: plat.Variant,
			Capacity: capacity, Labels: labels, Network: netw(), Version: version,
		}
	}
}
