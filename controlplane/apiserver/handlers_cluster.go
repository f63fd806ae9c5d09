package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/allocator"
	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/ca"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/secretbox"
	"github.com/warrenhq/warren/controlplane/store"
)

func (s *Server) cluster(v *store.View) (*api.Cluster, error) {
	c := v.Cluster()
	if c == nil {
		return nil, errorf(http.StatusServiceUnavailable, "the cluster is not initialised yet")
	}
	return c, nil
}

func writeIndex(w http.ResponseWriter, idx uint64) {
	w.Header().Set(client.HeaderIndex, strconv.FormatUint(idx, 10))
}

// newID makes a node or service ID: 16 random bytes in hex, which the CA
// accepts as a certificate common name.
// managerAddrs lists the API addresses of managers known to the store.
func managerAddrs(v *store.View) []string {
	var out []string
	for _, n := range v.Nodes() {
		if n.Status.Manager != nil && n.Status.Manager.APIAddr != "" {
			out = append(out, n.Status.Manager.APIAddr)
		}
	}
	slices.Sort(out)
	return out
}

func (s *Server) clusterInfo(w http.ResponseWriter, r *http.Request, _ Identity) error {
	v := s.b.View()
	c, err := s.cluster(v)
	if err != nil {
		return err
	}
	info := client.ClusterInfo{
		ID: c.ID, CreatedAt: c.CreatedAt, Network: c.Network,
		CADigest: c.CA.Digest, CACertPEM: c.CA.CertPEM, Index: v.Index(), Served: s.b.NodeID(),
	}
	members, err := s.b.Members()
	if err != nil {
		return fmt.Errorf("raft members: %w", err)
	}
	for _, m := range members {
		mi := client.ManagerInfo{NodeID: m.ID, RaftAddr: m.Addr, Voter: m.Voter, Leader: m.Leader}
		if n, ok := v.Node(m.ID); ok && n.Status.Manager != nil {
			mi.APIAddr = n.Status.Manager.APIAddr
		}
		info.Managers = append(info.Managers, mi)
	}
	writeIndex(w, v.Index())
	writeJSON(w, http.StatusOK, info)
	return nil
}

// join turns a token and a CSR into a certificate and a node record. The
// token is checked before anything else is parsed, so an anonymous caller
// cannot reach any other code path.
//
// A join either completes or leaves nothing behind: a version conflict on
// the cluster object (another join, a VIP allocation) is retried here, and
// a manager that cannot be added to raft has its node record removed
// again. Once the token was accepted the join no longer depends on the
// caller's connection, so a joiner that hangs up cannot stop it half-way.
func (s *Server) join(w http.ResponseWriter, r *http.Request, _ Identity) error {
	var req client.JoinRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	now := s.cfg.Now()
	c, err := s.cluster(s.b.View())
	if err != nil {
		return err
	}
	role := Role(req.Role)
	if role != RoleWorker && role != RoleManager {
		return errorf(http.StatusBadRequest, "join: role: must be worker or manager, not %q", req.Role)
	}
	tok, err := ca.ParseToken(req.Token)
	if err == nil {
		err = ca.CheckTokenCA(tok, c.CA.Digest)
	}
	if err == nil {
		err = ca.CheckToken(tok, api.NodeRole(role), c.Tokens, now)
	}
	if err != nil {
		return errorf(http.StatusUnauthorized, "join as %s refused: %v", role, err)
	}
	if role == RoleManager && (req.RaftAddr == "" || req.APIAddr == "") {
		return errorf(http.StatusBadRequest, "join: raft_addr and api_addr are required to join as a manager")
	}
	nodeID, err := api.NewID(s.cfg.Rand)
	if err != nil {
		return err
	}
	certPEM, err := s.b.Signer().Sign([]byte(req.CSRPEM), Identity{NodeID: nodeID, Role: role}, c.NodeCertTTL.D(), now, s.cfg.Rand)
	if err != nil {
		return errorf(http.StatusBadRequest, "join: csr_pem: %v", err)
	}
	node := api.Node{
		ID:   nodeID,
		Spec: api.NodeSpec{Role: api.NodeRole(role), Availability: api.AvailabilityActive},
		Status: api.NodeStatus{
			State: api.NodeUnknown, Hostname: req.Hostname, Addr: req.Addr,
		},
	}
	if role == RoleManager {
		node.Status.Manager = &api.ManagerStatus{RaftAddr: req.RaftAddr, APIAddr: req.APIAddr}
	}

	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), joinTimeout)
	defer cancel()
	s.joinMu.Lock()
	defer s.joinMu.Unlock()
	// The subnet is allocated now so the joiner can configure its pod
	// network before its first assignments arrive.
	var subnet string
	idx, err := s.applyToCluster(ctx, func(c api.Cluster) (*store.Batch, error) {
		next, sub, err := allocator.AllocateSubnet(c, nodeID)
		if err != nil {
			return nil, errorf(http.StatusServiceUnavailable, "join: no pod subnet left for a new node: %v", err)
		}
		subnet = sub
		return &store.Batch{
			Expect:   []store.Expectation{{Kind: store.KindNode, ID: nodeID, Version: 0}},
			Cluster:  &next,
			PutNodes: []api.Node{node},
		}, nil
	})
	if err != nil {
		return err
	}
	if role == RoleManager {
		// A nonvoter first: if the joiner never comes up, the quorum size
		// is unchanged. It asks for its vote with manager-ready once its
		// store has caught up.
		if err := s.b.AddNonvoter(nodeID, req.RaftAddr); err != nil {
			// The change may still commit after its future failed.
			if rerr := s.b.RemoveServer(nodeID); rerr != nil {
				s.log.Warn("cannot take back the raft seat of a failed join", zap.String("node_id", nodeID), zap.Error(rerr))
			}
			s.forgetNode(ctx, nodeID)
			return errorf(http.StatusServiceUnavailable, "join: add %s to raft as a nonvoter: %v; retry the join", req.RaftAddr, err)
		}
	}
	resp := client.JoinResponse{
		NodeID:    nodeID,
		CertPEM:   string(certPEM),
		CACertPEM: string(s.b.Signer().CertPEM()),
		Managers:  managerAddrs(s.b.View()),
		Network: api.ClusterNetwork{
			PodCIDR: c.Network.PodCIDR, ServiceCIDR: c.Network.ServiceCIDR, Domain: c.Network.Domain,
			Subnet: subnet,
		},
		Index: idx,
	}
	if role == RoleManager {
		resp.KEK = s.b.KEK()
		if c.Autolock {
			// So the joiner writes its KEK sealed from the start.
			resp.UnlockKey = c.Keys.UnlockKey
		}
	}
	s.log.Info("node joined", zap.String("node_id", nodeID), zap.String("role", string(role)), zap.String("hostname", req.Hostname))
	writeJSON(w, http.StatusOK, resp)
	return nil
}

const (
	// joinTimeout bounds a join once its token was accepted.
	joinTimeout = 30 * time.Second
	// conflictRetries bounds how often a write to the cluster object is
	// recomputed after another write to it won the race.
	conflictRetries = 20
)

// applyToCluster applies the batch build makes from the current cluster
// object, guarded by the object's version, and rebuilds it when another
// write changed the object first. Such a conflict is between writers inside
// the cluster, so the caller should never see it.
func (s *Server) applyToCluster(ctx context.Context, build func(api.Cluster) (*store.Batch, error)) (uint64, error) {
	for attempt := 1; ; attempt++ {
		c, err := s.cluster(s.b.View())
		if err != nil {
			return 0, err
		}
		b, err := build(*c)
		if err != nil {
			return 0, err
		}
		b.Expect = append(b.Expect, store.Expectation{Kind: store.KindCluster, Version: c.Meta.Version})
		idx, err := s.apply(ctx, b)
		if err == nil || !errors.Is(err, store.ErrConflict) || attempt == conflictRetries || ctx.Err() != nil {
			return idx, err
		}
		s.log.Debug("cluster object changed during a write; retrying", zap.Int("attempt", attempt), zap.Error(err))
	}
}

// forgetNode undoes the node record of a join that could not complete, so
// that a failed join leaves no node behind.
func (s *Server) forgetNode(ctx context.Context, nodeID string) {
	_, err := s.applyToCluster(ctx, func(c api.Cluster) (*store.Batch, error) {
		next := allocator.ReleaseSubnet(c, nodeID)
		return &store.Batch{Cluster: &next, DeleteNodes: []string{nodeID}}, nil
	})
	if err != nil {
		s.log.Warn("cannot remove the node record of a failed join", zap.String("node_id", nodeID), zap.Error(err))
	}
}

// managerReady promotes a caught-up nonvoter to voter.
func (s *Server) managerReady(w http.ResponseWriter, r *http.Request, id Identity) error {
	var req client.ManagerReadyRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	members, err := s.b.Members()
	if err != nil {
		return fmt.Errorf("raft members: %w", err)
	}
	i := slices.IndexFunc(members, func(m Member) bool { return m.ID == id.NodeID })
	if i < 0 {
		return errorf(http.StatusNotFound, "manager %s is not a raft member; join again", id.NodeID)
	}
	m := members[i]
	if m.Voter {
		writeJSON(w, http.StatusOK, client.WriteResult{})
		return nil
	}
	if v := s.b.View(); v.Index() < req.Index {
		return errorf(http.StatusConflict, "manager-ready: the leader is at index %d, before %d; retry", v.Index(), req.Index)
	}
	if err := s.b.AddVoter(m.ID, m.Addr); err != nil {
		return errorf(http.StatusServiceUnavailable, "promote %s to raft voter: %v", m.ID, err)
	}
	s.log.Info("manager promoted to voter", zap.String("node_id", m.ID), zap.String("raft_addr", m.Addr))
	writeJSON(w, http.StatusOK, client.WriteResult{})
	return nil
}

func (s *Server) joinTokens(w http.ResponseWriter, r *http.Request, _ Identity) error {
	c, err := s.cluster(s.b.View())
	if err != nil {
		return err
	}
	t := c.Tokens
	// The tokens are sealed with the managers' key-encryption key next to
	// their hashes, so an administrator can be shown the current one again
	// (as `docker swarm join-token` does) without raft holding it in clear.
	unseal := func(sealed []byte, aad []byte) string {
		if len(sealed) == 0 {
			return ""
		}
		b, err := secretbox.Open(s.b.KEK(), sealed, aad)
		if err != nil {
			s.log.Warn("cannot unseal join token", zap.Error(err))
			return ""
		}
		return string(b)
	}
	writeJSON(w, http.StatusOK, []client.TokenInfo{
		{Role: string(RoleWorker), Expires: t.WorkerExpires, Set: t.WorkerHash != "", Token: unseal(t.WorkerSealed, secretbox.AADWorkerToken)},
		{Role: string(RoleManager), Expires: t.ManagerExpires, Set: t.ManagerHash != "", Token: unseal(t.ManagerSealed, secretbox.AADManagerToken)},
	})
	return nil
}

func (s *Server) rotateJoinToken(w http.ResponseWriter, r *http.Request, _ Identity) error {
	role := Role(r.PathValue("role"))
	if role != RoleWorker && role != RoleManager {
		return errorf(http.StatusBadRequest, "join token role must be worker or manager, not %q", role)
	}
	var req client.RotateTokenRequest
	if r.ContentLength != 0 {
		if err := decodeBody(r, &req); err != nil {
			return err
		}
	}
	if req.TTL < 0 {
		return errorf(http.StatusBadRequest, "ttl: must be ≥ 0")
	}
	c, err := s.cluster(s.b.View())
	if err != nil {
		return err
	}
	tok, hash, err := ca.NewToken(c.CA.Digest, s.cfg.Rand)
	if err != nil {
		return fmt.Errorf("new join token: %w", err)
	}
	next := *c
	// A token always expires (the CA refuses one without an expiry).
	ttl := ca.DefaultTokenTTL
	if req.TTL > 0 {
		ttl = req.TTL.D()
	}
	expires := s.cfg.Now().Add(ttl)
	aad := secretbox.AADManagerToken
	if role == RoleWorker {
		aad = secretbox.AADWorkerToken
	}
	var sealed []byte
	if kek := s.b.KEK(); len(kek) > 0 {
		if sealed, err = secretbox.Seal(kek, []byte(tok), aad, s.cfg.Rand); err != nil {
			return fmt.Errorf("seal join token: %w", err)
		}
	}
	if role == RoleWorker {
		next.Tokens.WorkerHash, next.Tokens.WorkerExpires, next.Tokens.WorkerSealed = hash, expires, sealed
	} else {
		next.Tokens.ManagerHash, next.Tokens.ManagerExpires, next.Tokens.ManagerSealed = hash, expires, sealed
	}
	if _, err := s.apply(r.Context(), &store.Batch{
		Expect:  []store.Expectation{{Kind: store.KindCluster, Version: c.Meta.Version}},
		Cluster: &next,
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, client.TokenInfo{Role: string(role), Token: tok, Expires: expires, Set: true})
	return nil
}

// renewCert signs a new certificate for the identity the caller already
// has; the CSR only proves possession of the new key.
func (s *Server) renewCert(w http.ResponseWriter, r *http.Request, id Identity) error {
	if id.NodeID == "" {
		return errorf(http.StatusBadRequest, "certificate renewal needs the current client certificate; the unix socket has none")
	}
	var req client.RenewRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	v := s.b.View()
	c, err := s.cluster(v)
	if err != nil {
		return err
	}
	if id.Role != RoleAdmin {
		n, ok := v.Node(id.NodeID)
		if !ok {
			return errorf(http.StatusForbidden, "node %s was removed from the cluster; its certificate is not renewed", id.NodeID)
		}
		if string(n.Spec.Role) != string(id.Role) {
			// The role changed (promote/demote): the node must rejoin to get
			// a certificate for its new role, never silently keep the old one.
			return errorf(http.StatusForbidden, "node %s is now a %s; its %s certificate is not renewed", id.NodeID, n.Spec.Role, id.Role)
		}
	}
	certPEM, err := s.b.Signer().Sign([]byte(req.CSRPEM), id, c.NodeCertTTL.D(), s.cfg.Now(), s.cfg.Rand)
	if err != nil {
		return errorf(http.StatusBadRequest, "renew: csr_pem: %v", err)
	}
	writeJSON(w, http.StatusOK, client.RenewResponse{CertPEM: string(certPEM), CACertPEM: string(s.b.Signer().CertPEM())})
	return nil
}
