package apiserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/endpoints"
	"github.com/warrenhq/warren/controlplane/store"
	"github.com/warrenhq/warren/controlplane/tabledelta"
)

// sharedCache holds the part of the assignments every node gets at the
// store's latest index, already encoded: the service table and the peers
// are the bulk of an answer and the same for all nodes, so a change woken
// N agents costs one computation and one encoding instead of N.
//
// It also remembers the shapes of the last recentTables tables (which
// entry had which hash, not the entries), so an agent naming the table it
// holds gets only what changed since (controlplane/tabledelta).
type sharedCache struct {
	mu     sync.Mutex
	cur    *sharedAt
	recent []*tabledelta.Shape // oldest first
}

// recentTables bounds the remembered shapes. A shape is a few tens of
// bytes per service and peer; an agent further behind than this many
// tables (one per coalesced burst of changes at most) gets the full table.
const recentTables = 64

type sharedAt struct {
	shared *endpoints.Shared
	enc    *tabledelta.Encoded

	// services is enc's table joined, for the full answers: made on the
	// first one, since most tables are only ever sent as deltas, and a
	// table lives as long as the slowest answer built from it (at 10,000
	// tasks the joined copies of the tables in flight were a fifth of
	// the leader's heap).
	servicesOnce sync.Once
	servicesJSON json.RawMessage

	mu     sync.Mutex
	deltas map[*tabledelta.Shape]json.RawMessage // Diff from a recent shape to enc, computed once
}

// services is the whole service table, encoded once.
func (s *sharedAt) services() json.RawMessage {
	s.servicesOnce.Do(func() { s.servicesJSON = s.enc.Services() })
	return s.servicesJSON
}

// latest reads the store's view under the cache's lock and returns it with
// its encoded shared part, computing that only when the view moved past
// what is held. Reading the view under the lock means a computation is
// always for the newest index: agents woken by one burst queue here and all
// but the first find it done, instead of each recomputing the view it read
// a moment before.
func (c *sharedCache) latest(view func() *store.View) (*store.View, *sharedAt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := view()
	if c.cur != nil && c.cur.shared.Index() == v.Index() {
		return v, c.cur, nil
	}
	var cl api.Cluster
	if x := v.Cluster(); x != nil {
		cl = *x
	}
	// From the table before: a change touches a few services, and the
	// others keep their entries and encodings (whose bytes the tables in
	// flight then share).
	var prevShared *endpoints.Shared
	var prevEnc *tabledelta.Encoded
	if c.cur != nil {
		prevShared, prevEnc = c.cur.shared, c.cur.enc
	}
	sh := endpoints.NewSharedFrom(endpoints.ClusterView{
		Index: v.Index(), Cluster: cl, Nodes: v.Nodes(), Services: v.Services(),
		NodeTasks: v.TasksByNode, ServiceTasks: v.TasksByService, ServiceTasksChanged: v.ServiceTasksChanged,
	}, prevShared)
	enc, err := tabledelta.EncodeFrom(prevEnc, sh.Services(), sh.ServiceKeys(), sh.Peers())
	if err != nil {
		return nil, nil, err
	}
	c.cur = &sharedAt{shared: sh, enc: enc, deltas: map[*tabledelta.Shape]json.RawMessage{}}
	if n := len(c.recent); n == 0 || c.recent[n-1].Sum() != enc.Sum() {
		// A copy: the shape alone, without the encodings it came with.
		shape := enc.Shape
		if n == recentTables {
			c.recent = append(c.recent[:0], c.recent[1:]...)
		}
		c.recent = append(c.recent, &shape)
	}
	return v, c.cur, nil
}

// base is the recent table node holds if its digest is sum, or nil.
func (c *sharedCache) base(node string, sum tabledelta.Sum) *tabledelta.Shape {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.recent) - 1; i >= 0; i-- {
		if c.recent[i].SumFor(node) == sum {
			return c.recent[i]
		}
	}
	return nil
}

// deltaFrom is the encoded change from base to this table, shared by every
// node holding base.
func (s *sharedAt) deltaFrom(base *tabledelta.Shape) json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.deltas[base]
	if !ok {
		d = tabledelta.Diff(base, s.enc)
		s.deltas[base] = d
	}
	return d
}

// assignmentsHead is api.Assignments without Services and Peers, which
// are spliced in already encoded: encoding/json would re-validate and
// compact a json.RawMessage of the whole service table for every node,
// which cost more than encoding it. A test keeps the fields in step with
// api.Assignments.
type assignmentsHead struct {
	Index    uint64             `json:"index"`
	NodeID   string             `json:"node_id"`
	Tasks    []api.Task         `json:"tasks"`
	Network  api.ClusterNetwork `json:"network"`
	Role     api.NodeRole       `json:"role,omitempty"`
	Managers []string           `json:"managers"`
	// ManagerIDs are api.Assignments.ManagerIDs.
	ManagerIDs []string          `json:"manager_ids,omitempty"`
	Secrets    []api.SecretValue `json:"secrets,omitempty"`
	CacheKey   []byte            `json:"cache_key,omitempty"`
	// StopAfter is the node's own (api.Assignments.StopAfter).
	StopAfter map[string]api.Duration `json:"stop_after,omitempty"`
	Registry  api.RegistryConfig      `json:"registry,omitempty"`
	Table     string                  `json:"table,omitempty"`
}

// encodeAssignments is the JSON of a with the given encoded services and
// peers in place of its own.
func encodeAssignments(a api.Assignments, services, peers json.RawMessage) ([]byte, error) {
	return encodeHeadWith(a, field{"services", services}, field{"peers", peers})
}

// encodeDelta is the JSON of a with the given encoded delta in place of
// its services and peers.
func encodeDelta(a api.Assignments, delta json.RawMessage) ([]byte, error) {
	return encodeHeadWith(a, field{"delta", delta})
}

// field is a key of the answer and its value, encoded.
type field struct {
	key string
	val json.RawMessage
}

// encodeHeadWith is the JSON of a's head with fields after it.
func encodeHeadWith(a api.Assignments, fields ...field) ([]byte, error) {
	head, err := json.Marshal(assignmentsHead{
		Index: a.Index, NodeID: a.NodeID, Tasks: a.Tasks, Network: a.Network, Role: a.Role,
		Managers: a.Managers, ManagerIDs: a.ManagerIDs, Secrets: a.Secrets, CacheKey: a.CacheKey, StopAfter: a.StopAfter, Registry: a.Registry,
		Table: a.Table,
	})
	if err != nil {
		return nil, fmt.Errorf("encode assignments of node %s: %w", a.NodeID, err)
	}
	n := len(head) + 2
	for _, f := range fields {
		n += len(f.key) + len(f.val) + 4
	}
	var b bytes.Buffer
	b.Grow(n)
	b.Write(head[:len(head)-1]) // without its closing brace
	for _, f := range fields {
		b.WriteString(`,"`)
		b.WriteString(f.key)
		b.WriteString(`":`)
		b.Write(f.val)
	}
	b.WriteString("}\n")
	return b.Bytes(), nil
}
