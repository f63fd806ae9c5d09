package apiserver

import (
	"net/http"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/store"
)

// changeRole completes `node promote` and `node demote` from the node's
// side. The operator's command only records the wish (Spec.Role); the node
// sees it in its assignments and calls this route with its current
// certificate to get one for the new role. A new manager is added to raft
// as a nonvoter, gets the KEK, and asks for its vote once caught up
// (manager-ready), exactly like a manager that joined with a token.
func (s *Server) changeRole(w http.ResponseWriter, r *http.Request, id Identity) error {
	var req client.RoleChangeRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	v := s.b.View()
	c, err := s.cluster(v)
	if err != nil {
		return err
	}
	n, ok := v.Node(id.NodeID)
	if !ok {
		return errorf(http.StatusNotFound, "node %s is not part of the cluster", id.NodeID)
	}
	want := Role(n.Spec.Role)
	if want == id.Role {
		return errorf(http.StatusConflict, "node %s is already a %s", id.NodeID, want)
	}
	resp := client.RoleChangeResponse{Role: n.Spec.Role, CACertPEM: string(s.b.Signer().CertPEM())}
	if want == RoleManager {
		if req.RaftAddr == "" || req.APIAddr == "" {
			return errorf(http.StatusBadRequest, "role change to manager: raft_addr and api_addr are required")
		}
		version := n.Meta.Version
		n.Status.Manager = &api.ManagerStatus{RaftAddr: req.RaftAddr, APIAddr: req.APIAddr}
		idx, err := s.apply(r.Context(), &store.Batch{
			Expect:   []store.Expectation{{Kind: store.KindNode, ID: n.ID, Version: version}},
			PutNodes: []api.Node{n},
		})
		if err != nil {
			return err
		}
		if err := s.b.AddNonvoter(n.ID, req.RaftAddr); err != nil {
			return errorf(http.StatusServiceUnavailable, "add %s to raft as a nonvoter: %v", req.RaftAddr, err)
		}
		resp.KEK, resp.Index, resp.Managers = s.b.KEK(), idx, managerAddrs(v)
	}
	certPEM, err := s.b.Signer().Sign([]byte(req.CSRPEM), Identity{NodeID: n.ID, Role: want}, c.NodeCertTTL.D(), s.cfg.Now(), s.cfg.Rand)
	if err != nil {
		return errorf(http.StatusBadRequest, "role change: csr_pem: %v", err)
	}
	resp.CertPEM = string(certPEM)
	s.log.Info("node changes role", zap.String("node_id", n.ID), zap.String("from", string(id.Role)), zap.String("to", string(want)))
	writeJSON(w, http.StatusOK, resp)
	return nil
}
