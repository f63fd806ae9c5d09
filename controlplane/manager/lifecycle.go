package manager

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/allocator"
	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/ca"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/secretbox"
	"github.com/warrenhq/warren/controlplane/store"
)

func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

// initCluster creates the CA, this manager's identity and the cluster
// object, bootstraps raft and commits the first state.
func (m *Manager) initCluster(ctx context.Context) error {
	o := m.cfg.Init
	adv, err := m.advertise()
	if err != nil {
		return err
	}
	now := time.Now()
	clusterID := newID()
	root, err := ca.NewCA(now, rand.Reader, clusterID)
	if err != nil {
		return err
	}
	kek, err := ca.NewKEK(rand.Reader)
	if err != nil {
		return err
	}
	m.ident = &NodeIdentity{NodeID: newID(), Role: api.RoleManager, Managers: []string{adv}, Addr: hostOf(adv), APIAddr: adv}
	ttl := o.CertTTL
	if ttl == 0 {
		ttl = ca.DefaultNodeCertTTL
	}
	certPEM, keyPEM, err := root.Issue(ca.Identity{NodeID: m.ident.NodeID, Role: ca.RoleManager}, ttl, now, rand.Reader)
	if err != nil {
		return err
	}
	certs, err := ca.NewCertStore(certPEM, keyPEM)
	if err != nil {
		return err
	}
	// The administrator's client certificate for the CLI on other machines
	// (on this one the root-only socket is enough).
	adminCert, adminKey, err := root.Issue(ca.Identity{NodeID: "admin", Role: ca.RoleAdmin}, ttl, now, rand.Reader)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(m.cfg.DataDir, 0o700); err != nil {
		return err
	}
	if err := SaveCerts(m.cfg.DataDir, certs, root.CertPEM()); err != nil {
		return err
	}
	var unlockKey, sealedUnlock []byte
	if o.Autolock {
		if unlockKey, sealedUnlock, err = newUnlockKey(kek); err != nil {
			return err
		}
	}
	if err := saveKEK(m.cfg.DataDir, kek, unlockKey); err != nil {
		return err
	}
	adminDir := filepath.Join(m.cfg.DataDir, AdminDir)
	for name, b := range map[string][]byte{"admin.crt": adminCert, "admin.key": adminKey, CAFile: root.CertPEM(), "managers": []byte(adv + "\n")} {
		if err := writePrivate(filepath.Join(adminDir, name), b); err != nil {
			return err
		}
	}
	m.caCert, m.certs, m.kek, m.signer = root, certs, kek, root

	encKey, err := root.EncryptedKey(kek, rand.Reader)
	if err != nil {
		return err
	}
	worker, manager, tokens, err := ca.NewJoinTokens(root.Digest(), now, rand.Reader)
	if err != nil {
		return err
	}
	if tokens.WorkerSealed, err = secretbox.Seal(kek, []byte(worker), secretbox.AADWorkerToken, rand.Reader); err != nil {
		return err
	}
	if tokens.ManagerSealed, err = secretbox.Seal(kek, []byte(manager), secretbox.AADManagerToken, rand.Reader); err != nil {
		return err
	}
	cluster := api.Cluster{
		ID:        clusterID,
		CreatedAt: now,
		Network: api.ClusterNetworkSpec{
			PodCIDR: or(o.PodCIDR, "10.42.0.0/16"), ServiceCIDR: or(o.ServiceCIDR, "10.43.0.0/16"),
			Domain: or(o.Domain, "warren.local"), WGPort: orPort(o.WGPort, 51820),
		},
		CA:            api.ClusterCA{CertPEM: string(root.CertPEM()), EncryptedKeyPEM: encKey, Digest: root.Digest()},
		Tokens:        tokens,
		NodeCertTTL:   api.Duration(ttl),
		NodeDownGrace: api.Duration(orDur(o.NodeDownGrace, 30*time.Second)),
		Autolock:      o.Autolock,
		Keys:          api.ClusterKeys{UnlockKey: sealedUnlock},
	}
	cluster, subnet, err := allocator.AllocateSubnet(cluster, m.ident.NodeID)
	if err != nil {
		return err
	}
	m.ident.Network = api.ClusterNetwork{PodCIDR: cluster.Network.PodCIDR, ServiceCIDR: cluster.Network.ServiceCIDR, Domain: cluster.Network.Domain, Subnet: subnet}

	if err := m.startRaft(true); err != nil {
		return err
	}
	if err := m.waitLeader(ctx, 30*time.Second); err != nil {
		return err
	}
	self := api.Node{
		ID:   m.ident.NodeID,
		Spec: api.NodeSpec{Role: api.RoleManager, Availability: api.AvailabilityActive},
		Status: api.NodeStatus{
			State: api.NodeUnknown, Hostname: m.cfg.Hostname, Addr: m.ident.Addr,
			Manager: &api.ManagerStatus{RaftAddr: adv, APIAddr: adv, Leader: true, Voter: true},
			Network: api.NodeNetwork{Subnet: subnet},
		},
	}
	if _, err := m.raft.Apply(ctx, &store.Batch{Now: now, Cluster: &cluster, PutNodes: []api.Node{self}}); err != nil {
		return fmt.Errorf("commit the new cluster: %w", err)
	}
	// node.json is written last: a crash before this point leaves a data dir
	// that `cluster init` refuses rather than half-resumes.
	if err := SaveIdentity(m.cfg.DataDir, m.ident); err != nil {
		return err
	}
	m.init = &InitResult{ClusterID: clusterID, WorkerToken: worker, ManagerToken: manager}
	if unlockKey != nil {
		m.init.UnlockKey = secretbox.FormatUnlockKey(unlockKey)
	}
	m.log.Info("cluster initialised", zap.String("cluster_id", clusterID), zap.String("node_id", m.ident.NodeID), zap.String("advertise", adv))
	return nil
}

// resume restarts a manager from its data directory. It never bootstraps.
func (m *Manager) resume(ctx context.Context) error {
	dir := filepath.Join(m.cfg.DataDir, CertsDir)
	certs, err := ca.LoadCertStore(dir)
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return err
	}
	verifier, err := ca.LoadVerifier(caPEM)
	if err != nil {
		return err
	}
	m.caCert, m.certs = verifier, certs
	var kek []byte
	if Locked(m.cfg.DataDir) {
		kek, err = m.waitUnlock(ctx)
	} else {
		kek, err = ca.LoadKEK(m.cfg.DataDir)
	}
	if err != nil {
		return err
	}
	m.kek = kek
	if m.cfg.AdvertiseAddr == "" {
		m.cfg.AdvertiseAddr = m.ident.APIAddr
	}
	if err := m.startRaft(false); err != nil {
		return err
	}
	if m.ident.PendingVote > 0 {
		// Promoted from worker: raft knows this manager as a nonvoter.
		go m.askForVote(context.Background(), m.ident.PendingVote, m.ident.Managers)
	}
	m.log.Info("manager resumed", zap.String("node_id", m.ident.NodeID), zap.String("advertise", m.cfg.AdvertiseAddr))
	return nil
}

// joinCluster joins as a manager: pin the CA by the token's digest, send a
// CSR with the token, start raft as a nonvoter, then ask for a vote once
// this replica has caught up.
func (m *Manager) joinCluster(ctx context.Context) error {
	adv, err := m.advertise()
	if err != nil {
		return err
	}
	resp, certs, verifier, err := Enroll(ctx, m.cfg.DataDir, m.cfg.Join.Addr, m.cfg.Join.Token, client.JoinRequest{
		Role: string(api.RoleManager), Hostname: m.cfg.Hostname, Addr: hostOf(adv), RaftAddr: adv, APIAddr: adv,
	})
	if err != nil {
		return err
	}
	m.caCert, m.certs, m.kek = verifier, certs, resp.KEK
	m.ident = &NodeIdentity{NodeID: resp.NodeID, Role: api.RoleManager, Managers: append(resp.Managers, adv), Addr: hostOf(adv), APIAddr: adv, Network: resp.Network}
	if err := SaveIdentity(m.cfg.DataDir, m.ident); err != nil {
		ForgetEnrolment(m.cfg.DataDir)
		return err
	}
	// From here on the data dir is a whole node: if raft cannot start now
	// (the address is taken), the next start resumes it.
	if err := m.startRaft(false); err != nil {
		return err
	}
	go m.askForVote(context.WithoutCancel(ctx), resp.Index, resp.Managers)
	m.log.Info("joined cluster as manager", zap.String("node_id", resp.NodeID))
	return nil
}

// askForVote waits until the local replica reached the join index and asks
// the leader to make this manager a voter, retrying until it succeeds.
func (m *Manager) askForVote(ctx context.Context, index uint64, managers []string) {
	for m.st.Index() < index {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, _ = m.st.WaitIndex(wctx, m.st.Index())
		cancel()
		if ctx.Err() != nil {
			return
		}
	}
	c, err := client.New(client.Config{Addrs: managers, TLS: ca.ClientConfig(m.caCert, m.certs, ca.ManagerServerName)})
	if err != nil {
		m.log.Error("ask for vote", zap.Error(err))
		return
	}
	for delay := 200 * time.Millisecond; ; delay = min(delay*2, 5*time.Second) {
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := c.ManagerReady(rctx, client.ManagerReadyRequest{RaftAddr: m.cfg.AdvertiseAddr, Index: index})
		cancel()
		if err == nil {
			m.log.Info("manager is now a raft voter")
			if m.ident.PendingVote != 0 {
				m.ident.PendingVote = 0
				if err := SaveIdentity(m.cfg.DataDir, m.ident); err != nil {
					m.log.Warn("save identity", zap.Error(err))
				}
			}
			return
		}
		m.log.Warn("ask for vote", zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

func (m *Manager) waitLeader(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	for !m.raft.IsLeader() {
		if time.Now().After(deadline) {
			return errors.New("raft did not elect this manager leader")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

func writePrivate(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func or(v, def string) string {
	if strings.TrimSpace(v) == "" {
		return def
	}
	return v
}

func orPort(v, def uint16) uint16 {
	if v == 0 {
		return def
	}
	return v
}

func orDur(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}
