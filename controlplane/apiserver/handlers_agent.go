package apiserver

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/store"
	"github.com/warrenhq/warren/controlplane/tabledelta"
)

// The agent routes act on the caller's own node only: the node ID comes from
// its certificate, and a body naming another node is refused rather than
// trusted.

func checkSelf(id Identity, claimed string) error {
	if id.NodeID == "" {
		return errorf(http.StatusForbidden, "agent routes need a node certificate")
	}
	if claimed != "" && claimed != id.NodeID {
		return errorf(http.StatusForbidden, "node %s may not act for node %s", id.NodeID, claimed)
	}
	return nil
}

// register records what the node says about itself and counts as its
// heartbeat. It merges into Status, keeping what the control plane owns
// (subnet, manager membership).
func (s *Server) register(w http.ResponseWriter, r *http.Request, id Identity) error {
	var reg api.NodeRegistration
	if err := decodeBody(r, &reg); err != nil {
		return err
	}
	if err := checkSelf(id, reg.NodeID); err != nil {
		return err
	}
	n, ok := s.b.View().Node(id.NodeID)
	if !ok {
		return errorf(http.StatusNotFound, "node %s is not part of the cluster (was it removed?); join again", id.NodeID)
	}
	st := n.Status
	st.State = api.NodeReady
	st.Hostname, st.Addr, st.OS, st.Arch, st.Variant = reg.Hostname, reg.Addr, reg.OS, reg.Arch, reg.Variant
	st.Capacity, st.Labels, st.Version = reg.Capacity, reg.Labels, reg.Version
	st.VolumeDrivers = reg.VolumeDrivers
	// Unchanged counts keep the heartbeat out of raft (sameStatus below).
	st.Traffic = reg.Traffic
	st.Heartbeat = s.cfg.Now()
	st.Message = ""
	st.Network.WGPublicKey = reg.Network.WGPublicKey
	st.Network.WGEndpoint = reg.Network.WGEndpoint
	st.Network.DNSAddr = reg.Network.DNSAddr
	st.Network.AgentAddr = reg.Network.AgentAddr
	// A heartbeat that changes nothing but its time stays out of raft when
	// the leader can keep it in memory (as Nomad does): with hundreds of
	// nodes, a raft write per heartbeat would wake every agent's blocking
	// query several times a second.
	if ar, ok := s.b.(TableAckRecorder); ok {
		// Before the status write: a node coming back ready must not count
		// as having acked nothing for the plan that write wakes.
		ar.RecordTableAck(id.NodeID, reg.TableIndex, st.Heartbeat)
	}
	if hr, ok := s.b.(HeartbeatRecorder); ok && n.Status.State == api.NodeReady && sameStatus(n.Status, st) {
		hr.RecordHeartbeat(id.NodeID, st.Heartbeat)
		writeJSON(w, http.StatusOK, client.WriteResult{Index: s.b.View().Index(), ID: id.NodeID})
		return nil
	}
	idx, err := s.apply(r.Context(), &store.Batch{
		NodeStatuses: []store.NodeStatusUpdate{{NodeID: id.NodeID, Status: st}},
	})
	if err != nil {
		return err
	}
	if hr, ok := s.b.(HeartbeatRecorder); ok {
		hr.RecordHeartbeat(id.NodeID, st.Heartbeat)
	}
	writeJSON(w, http.StatusOK, client.WriteResult{Index: idx, ID: id.NodeID})
	return nil
}

// HeartbeatRecorder is implemented by backends whose leader keeps node
// heartbeats in memory; the orchestrator reads them from there.
type HeartbeatRecorder interface {
	RecordHeartbeat(nodeID string, at time.Time)
}

// TableAckRecorder is implemented by backends whose leader keeps, in memory,
// the service-table index each node applied (NodeRegistration.TableIndex):
// a task's stop waits for it (api.Drain).
type TableAckRecorder interface {
	RecordTableAck(nodeID string, index uint64, at time.Time)
}

// sameStatus reports whether two node statuses differ only in heartbeat time.
func sameStatus(a, b api.NodeStatus) bool {
	a.Heartbeat, b.Heartbeat = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

// assignments is a blocking query: it answers when the store index moves
// past ?index= or when ?wait= (default 30s, capped) runs out. An agent that
// names the table it holds (?base=, its api.Assignments.Table) gets only
// what changed in it when this manager still knows that table.
func (s *Server) assignments(w http.ResponseWriter, r *http.Request, id Identity) error {
	if err := checkSelf(id, ""); err != nil {
		return err
	}
	q := r.URL.Query()
	var base *tabledelta.Sum
	if v := q.Get("base"); v != "" {
		sum, err := tabledelta.ParseSum(v)
		if err != nil {
			return errorf(http.StatusBadRequest, "base: %v", err)
		}
		base = &sum
	}
	var after uint64
	if v := q.Get("index"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return errorf(http.StatusBadRequest, "index: %q is not a raft index", v)
		}
		after = n
	}
	wait := 30 * time.Second
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return errorf(http.StatusBadRequest, "wait: %q is not a duration ≥ 0 (e.g. 30s)", v)
		}
		wait = d
	}
	wait = min(wait, s.cfg.MaxWait)
	if s.b.View().Index() <= after && wait > 0 {
		deadline := time.Now().Add(wait)
		ctx, cancel := context.WithDeadline(r.Context(), deadline)
		_, err := s.b.WaitIndex(ctx, after)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			if r.Context().Err() != nil {
				return nil // the agent went away
			}
			return err
		}
		// Changes come in bursts (a plan, then every node's status
		// report): answer after the burst rather than once per entry of
		// it, so every agent woken by it shares one computed answer.
		if d := min(s.cfg.AssignmentsCoalesce, time.Until(deadline)); err == nil && d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return nil
			}
		}
	}
	if v := s.b.View(); after > 0 && v.Index() == after && q.Get("unchanged") == "empty" {
		// The wait ran out with nothing new: the agent holds all of it
		// already (an agent behind or ahead of this store gets a full
		// answer below). Older agents, which do not ask, still get one.
		if _, ok := v.Node(id.NodeID); !ok {
			return errorf(http.StatusNotFound, "node %s is not part of the cluster (was it removed?); join again", id.NodeID)
		}
		writeIndex(w, after)
		writeJSON(w, http.StatusOK, api.Assignments{Index: after, NodeID: id.NodeID})
		countAnswer("unchanged", 0)
		return nil
	}
	v, sh, err := s.shared.latest(s.b.View)
	if err != nil {
		return err
	}
	if _, ok := v.Node(id.NodeID); !ok {
		return errorf(http.StatusNotFound, "node %s is not part of the cluster (was it removed?); join again", id.NodeID)
	}
	a := sh.shared.Header(id.NodeID)
	if a.Index == 0 {
		a.Index = v.Index()
	}
	secrets, cacheKey, err := s.nodeSecrets(v, id.NodeID, a.Tasks)
	if err != nil {
		return err
	}
	a.Secrets, a.CacheKey = secrets, cacheKey
	if c := v.Cluster(); c != nil {
		a.Registry = c.Registry
	}
	a.Table = sh.enc.SumFor(id.NodeID).String()
	// A base this manager does not remember (too old, or a table only
	// another manager computed) gets the full table.
	var from *tabledelta.Shape
	if base != nil {
		from = s.shared.base(id.NodeID, *base)
	}
	var body []byte
	kind := "full"
	if from != nil {
		kind = "delta"
		body, err = encodeDelta(a, tabledelta.WithBase(*base, sh.deltaFrom(from)))
	} else {
		body, err = encodeAssignments(a, sh.services(), sh.enc.PeersFor(id.NodeID))
	}
	if err != nil {
		return err
	}
	countAnswer(kind, len(body))
	writeIndex(w, a.Index)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return nil
}

// reportStatus turns a report into status updates for the caller's node. The
// store drops updates for tasks not assigned to that node, so a node cannot
// change another node's tasks even by naming their IDs.
func (s *Server) reportStatus(w http.ResponseWriter, r *http.Request, id Identity) error {
	var rep api.StatusReport
	if err := decodeBody(r, &rep); err != nil {
		return err
	}
	if err := checkSelf(id, rep.NodeID); err != nil {
		return err
	}
	if len(rep.Tasks) == 0 {
		writeJSON(w, http.StatusOK, client.WriteResult{Index: s.b.View().Index()})
		return nil
	}
	ups := make([]store.TaskStatusUpdate, 0, len(rep.Tasks))
	for taskID, st := range rep.Tasks {
		ups = append(ups, store.TaskStatusUpdate{TaskID: taskID, NodeID: id.NodeID, Status: st})
	}
	idx, err := s.applyReports(r.Context(), ups)
	if err != nil {
		return err
	}
	countReports(rep.Tasks)
	writeJSON(w, http.StatusOK, client.WriteResult{Index: idx})
	return nil
}

// TableAckReader is implemented by backends that keep the table acks; the
// leader's are the complete ones.
type TableAckReader interface {
	TableAcks() map[string]api.TableAck
}

// tables answers where every node's service table stands. It is a read
// forwarded to the leader, which alone hears the acks.
func (s *Server) tables(w http.ResponseWriter, r *http.Request, _ Identity) error {
	v := s.b.View()
	out := api.Tables{Index: v.Index(), Leader: s.b.IsLeader(), Nodes: []api.NodeTable{}}
	var acks map[string]api.TableAck
	if ar, ok := s.b.(TableAckReader); ok {
		acks = ar.TableAcks()
	}
	for _, n := range v.Nodes() {
		a := acks[n.ID]
		out.Nodes = append(out.Nodes, api.NodeTable{NodeID: n.ID, Hostname: n.Status.Hostname, State: n.Status.State, Applied: a.Index, At: a.At})
	}
	sort.Slice(out.Nodes, func(i, j int) bool { return out.Nodes[i].NodeID < out.Nodes[j].NodeID })
	writeJSON(w, http.StatusOK, out)
	return nil
}
