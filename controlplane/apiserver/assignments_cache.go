package apiserver

import (
	"bytes"
	"encoding/json"
	"sync"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/endpoints"
	"github.com/warrenhq/warren/controlplane/store"
)

// sharedCache holds the part of the assignments every node gets at the
// store's latest index, already encoded: the service table and the peers
// are the bulk of an answer and the same for all nodes, so a change woken
// N agents costs one computation and one encoding instead of N.
type sharedCache struct {
	mu  sync.Mutex
	cur *sharedAt
}

type sharedAt struct {
	shared   *endpoints.Shared
	services json.RawMessage
	peers    []json.RawMessage // parallel to shared.Peers()
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
	sh := endpoints.NewShared(endpoints.ClusterView{
		Index: v.Index(), Cluster: cl, Nodes: v.Nodes(), Services: v.Services(), Tasks: v.Tasks(),
	})
	svcs, err := json.Marshal(sh.Services())
	if err != nil {
		return nil, nil, err
	}
	out := &sharedAt{shared: sh, services: svcs, peers: make([]json.RawMessage, len(sh.Peers()))}
	for i, p := range sh.Peers() {
		if out.peers[i], err = json.Marshal(p); err != nil {
			return nil, nil, err
		}
	}
	c.cur = out
	return v, out, nil
}

// peersFor is the encoded peer list without nodeID itself.
func (s *sharedAt) peersFor(nodeID string) json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('[')
	first := true
	for i, p := range s.shared.Peers() {
		if p.NodeID == nodeID {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.Write(s.peers[i])
	}
	b.WriteByte(']')
	return b.Bytes()
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
	Secrets  []api.SecretValue  `json:"secrets,omitempty"`
	CacheKey []byte             `json:"cache_key,omitempty"`
	// StopAfter is the node's own (api.Assignments.StopAfter).
	StopAfter map[string]api.Duration `json:"stop_after,omitempty"`
	Registry  api.RegistryConfig      `json:"registry,omitempty"`
}

// encodeAssignments is the JSON of a with the given encoded services and
// peers in place of its own.
func encodeAssignments(a api.Assignments, services, peers json.RawMessage) ([]byte, error) {
	head, err := json.Marshal(assignmentsHead{
		Index: a.Index, NodeID: a.NodeID, Tasks: a.Tasks, Network: a.Network, Role: a.Role,
		Managers: a.Managers, Secrets: a.Secrets, CacheKey: a.CacheKey, StopAfter: a.StopAfter, Registry: a.Registry,
	})
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Grow(len(head) + len(services) + len(peers) + 32)
	b.Write(head[:len(head)-1]) // without its closing brace
	b.WriteString(`,"services":`)
	b.Write(services)
	b.WriteString(`,"peers":`)
	b.Write(peers)
	b.WriteString("}\n")
	return b.Bytes(), nil
}
