package apiserver

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/warrenhq/warren/controlplane/allocator"
	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/store"
)

// findNode resolves a node by ID, then by unique hostname.
func findNode(v *store.View, ref string) (api.Node, error) {
	if n, ok := v.Node(ref); ok {
		return n, nil
	}
	var hits []api.Node
	for _, n := range v.Nodes() {
		if n.Status.Hostname == ref {
			hits = append(hits, n)
		}
	}
	switch len(hits) {
	case 0:
		return api.Node{}, errorf(http.StatusNotFound, "node %q not found", ref)
	case 1:
		return hits[0], nil
	}
	return api.Node{}, errorf(http.StatusConflict, "node %q: hostname is ambiguous (%d nodes); use the node ID", ref, len(hits))
}

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request, _ Identity) error {
	v := s.b.View()
	nodes := v.Nodes()
	slices.SortFunc(nodes, func(a, b api.Node) int {
		return strings.Compare(a.Status.Hostname+"\x00"+a.ID, b.Status.Hostname+"\x00"+b.ID)
	})
	writeIndex(w, v.Index())
	writeJSON(w, http.StatusOK, nonNil(nodes))
	return nil
}

func (s *Server) inspectNode(w http.ResponseWriter, r *http.Request, _ Identity) error {
	v := s.b.View()
	n, err := findNode(v, r.PathValue("ref"))
	if err != nil {
		return err
	}
	writeIndex(w, v.Index())
	writeJSON(w, http.StatusOK, n)
	return nil
}

func (s *Server) putNode(w http.ResponseWriter, r *http.Request, n api.Node, version uint64) error {
	idx, err := s.apply(r.Context(), &store.Batch{
		Expect:   []store.Expectation{{Kind: store.KindNode, ID: n.ID, Version: version}},
		PutNodes: []api.Node{n},
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, client.WriteResult{Index: idx, ID: n.ID})
	return nil
}

// updateNode changes a node's availability and labels. The batch expects
// the node as read, and the managers write the node's status into the same
// object (state changes, a new leader's view of every node), most of all
// around a failover; the change does not depend on that status, so a batch
// refused as a conflict (nothing was applied) is re-read and tried again
// rather than handed to the operator as "retry".
func (s *Server) updateNode(w http.ResponseWriter, r *http.Request, _ Identity) error {
	var u client.NodeUpdate
	if err := decodeBody(r, &u); err != nil {
		return err
	}
	const attempts = 32 // as createService: more than the concurrent writers
	for i := 1; ; i++ {
		err := s.updateNodeOnce(w, r, u)
		if i < attempts && errors.Is(err, store.ErrConflict) {
			continue
		}
		return err
	}
}

func (s *Server) updateNodeOnce(w http.ResponseWriter, r *http.Request, u client.NodeUpdate) error {
	n, err := findNode(s.b.View(), r.PathValue("ref"))
	if err != nil {
		return err
	}
	version := n.Meta.Version
	if u.Availability != nil {
		switch *u.Availability {
		case api.AvailabilityActive, api.AvailabilityPause, api.AvailabilityDrain:
			n.Spec.Availability = *u.Availability
		default:
			return errorf(http.StatusBadRequest, "node %q: availability: must be active, pause or drain, not %q", n.ID, *u.Availability)
		}
	}
	labels := maps.Clone(n.Spec.Labels)
	if labels == nil && len(u.LabelAdd) > 0 {
		labels = map[string]string{}
	}
	for k, val := range u.LabelAdd {
		if k == "" || strings.ContainsAny(k, "=, \t") {
			return errorf(http.StatusBadRequest, "node %q: label_add: key %q must be non-empty without '=', ',' or spaces", n.ID, k)
		}
		labels[k] = val
	}
	for _, k := range u.LabelRm {
		if _, ok := labels[k]; !ok {
			return errorf(http.StatusBadRequest, "node %q: label_rm: label %q is not set", n.ID, k)
		}
		delete(labels, k)
	}
	n.Spec.Labels = labels
	return s.putNode(w, r, n, version)
}

func (s *Server) removeNode(w http.ResponseWriter, r *http.Request, _ Identity) error {
	n, err := findNode(s.b.View(), r.PathValue("ref"))
	if err != nil {
		return err
	}
	if n.Spec.Role == api.RoleManager {
		return errorf(http.StatusBadRequest, "node %q is a manager: demote it before removing it", n.ID)
	}
	if n.Status.State != api.NodeDown && r.URL.Query().Get("force") != "true" {
		return errorf(http.StatusBadRequest, "node %q is %s, not down: stop it first or remove it with force", n.ID, n.Status.State)
	}
	b := &store.Batch{
		Expect: []store.Expectation{{Kind: store.KindNode, ID: n.ID, Version: n.Meta.Version}},
		// A tombstone, not only a delete: the node keeps a certificate the
		// managers must refuse from now on (revocation.go).
		RemoveNodes: []string{n.ID},
	}
	if c := s.b.View().Cluster(); c != nil {
		if _, ok := c.Subnets[n.ID]; ok {
			next := allocator.ReleaseSubnet(*c, n.ID)
			b.Cluster = &next
			b.Expect = append(b.Expect, store.Expectation{Kind: store.KindCluster, Version: c.Meta.Version})
		}
	}
	idx, err := s.apply(r.Context(), b)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, client.WriteResult{Index: idx, ID: n.ID})
	return nil
}

// promoteNode records the wish; the node sees it in its assignments and
// completes the change itself through changeRole (it needs a manager
// certificate and a raft address, which only the node can provide).
func (s *Server) promoteNode(w http.ResponseWriter, r *http.Request, _ Identity) error {
	n, err := findNode(s.b.View(), r.PathValue("ref"))
	if err != nil {
		return err
	}
	if n.Spec.Role == api.RoleManager {
		return errorf(http.StatusBadRequest, "node %q is already a manager", n.ID)
	}
	version := n.Meta.Version
	n.Spec.Role = api.RoleManager
	return s.putNode(w, r, n, version)
}

// demoteNode removes the manager from raft first, so the store never says
// worker while the node still votes.
func (s *Server) demoteNode(w http.ResponseWriter, r *http.Request, _ Identity) error {
	n, err := findNode(s.b.View(), r.PathValue("ref"))
	if err != nil {
		return err
	}
	if n.Spec.Role != api.RoleManager {
		return errorf(http.StatusBadRequest, "node %q is not a manager", n.ID)
	}
	members, err := s.b.Members()
	if err != nil {
		return fmt.Errorf("raft members: %w", err)
	}
	voters := 0
	var self *Member
	for i, m := range members {
		if m.Voter {
			voters++
		}
		if m.ID == n.ID {
			self = &members[i]
		}
	}
	if self != nil {
		if self.Voter && voters <= 1 {
			return errorf(http.StatusBadRequest, "node %q is the last raft voter: demoting it would leave the cluster without managers", n.ID)
		}
		if err := s.b.RemoveServer(self.ID); err != nil {
			return errorf(http.StatusServiceUnavailable, "remove %s from raft: %v", n.ID, err)
		}
	}
	version := n.Meta.Version
	n.Spec.Role = api.RoleWorker
	return s.putNode(w, r, n, version)
}

// nonNil makes empty lists encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
