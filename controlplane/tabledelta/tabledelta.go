// Package tabledelta lets the managers send a node only what changed in the
// part of its assignments every node shares: the service table and the mesh
// peers. At 50,000 tasks that part is ~6.5 MB, and a change usually touches
// one service of it.
//
// A table's Sum is the sum of a hash of each entry's JSON encoding (each
// service, each peer), so it does not depend on order and is kept up to
// date by adding and subtracting the entries a change touches: the
// managers key the versions they remember by it (an agent failing over to
// another manager, which computed its tables at other raft indexes, still
// finds its base there), and a node checks with it, after applying a
// change, that its copy is the managers' table without re-encoding the
// entries the change did not touch.
//
// A node's table leaves the node itself out of its peers (a node is not its
// own peer), so what a node holds is summed without its own peer entry
// (Shape.SumFor), and a delta that upserts the node's own entry is applied
// without it.
//
// Pure: no clock, no I/O. It imports only controlplane/api.
package tabledelta

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"

	"github.com/warrenhq/warren/controlplane/api"
)

// Sum is a table's digest; its text form (String) travels on the wire.
type Sum uint64

func (s Sum) String() string { return fmt.Sprintf("%016x", uint64(s)) }

// ParseSum reads a Sum's text form.
func ParseSum(s string) (Sum, error) {
	if len(s) != 16 {
		return 0, fmt.Errorf("table sum %q: want 16 hex digits", s)
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("table sum %q: %w", s, err)
	}
	return Sum(v), nil
}

// Kinds keep a service and a peer with the same encoding from hashing alike.
const (
	kindService = 's'
	kindPeer    = 'p'
)

// hash is an entry's share of a Sum. sha256 rather than a faster
// non-cryptographic hash: a node chooses its own peer entry (its keys and
// address), and must not be able to make another node's table look
// unchanged when it is not.
func hash(kind byte, enc []byte) uint64 {
	h := sha256.New()
	h.Write([]byte{kind})
	h.Write(enc)
	var out [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(out[:0]))
}

// Shape is what one version of the table held: each entry's hash by key
// (service ID, peer node ID). The managers keep the shapes of recent
// versions, which are small, rather than the versions themselves.
type Shape struct {
	services map[string]uint64
	peers    map[string]uint64
	sum      Sum
}

// Sum is the digest of the whole table, every peer included.
func (s *Shape) Sum() Sum { return s.sum }

// SumFor is the digest of the table as node sees it: without its own peer
// entry.
func (s *Shape) SumFor(node string) Sum {
	return s.sum - Sum(s.peers[node])
}

// Encoded is one version of the table with every entry encoded once: the
// managers splice the encodings into every node's answer, full or delta.
type Encoded struct {
	Shape
	services   []json.RawMessage // in the order given to Encode
	serviceIDs []string
	// serviceKeys are the caller's keys of the services (EncodeFrom), by
	// position; nil when none were given.
	serviceKeys []uint64
	peers       []json.RawMessage
	peerIDs     []string
}

// Encode encodes and hashes every entry. services must be sorted by
// ServiceID and peers by NodeID, as the managers compute them: a node
// applying a delta sorts the same way, and its copy must be byte for byte
// the managers' table.
func Encode(services []api.ServiceEndpoints, peers []api.Peer) (*Encoded, error) {
	return EncodeFrom(nil, services, nil, peers)
}

// EncodeFrom is Encode reusing prev's encodings (prev may be nil): keys
// are the caller's keys of services by position (nil: none), such that
// equal keys mean equal entries (endpoints.Shared.ServiceKeys), and a
// service whose key is the one it had in prev keeps prev's encoding and
// hash instead of being encoded again. The two versions then share the
// encoding's bytes, which are never modified.
func EncodeFrom(prev *Encoded, services []api.ServiceEndpoints, keys []uint64, peers []api.Peer) (*Encoded, error) {
	if keys != nil && len(keys) != len(services) {
		return nil, fmt.Errorf("encode: %d keys for %d services", len(keys), len(services))
	}
	if prev != nil && prev.serviceKeys == nil {
		prev = nil
	}
	e := &Encoded{
		Shape:    Shape{services: make(map[string]uint64, len(services)), peers: make(map[string]uint64, len(peers))},
		services: make([]json.RawMessage, len(services)), serviceIDs: make([]string, len(services)),
		peers: make([]json.RawMessage, len(peers)), peerIDs: make([]string, len(peers)),
	}
	var reuse func(i int) (json.RawMessage, uint64, bool)
	if keys != nil {
		e.serviceKeys = keys
		if prev != nil {
			reuse = func(i int) (json.RawMessage, uint64, bool) {
				id := services[i].ServiceID
				j, ok := slices.BinarySearch(prev.serviceIDs, id)
				if !ok || prev.serviceKeys[j] != keys[i] {
					return nil, 0, false
				}
				return prev.services[j], prev.Shape.services[id], true
			}
		}
	}
	var err error
	if e.sum, err = encodeList(services, kindService, func(s api.ServiceEndpoints) string { return s.ServiceID }, e.services, e.serviceIDs, e.Shape.services, reuse); err != nil {
		return nil, err
	}
	sum, err := encodeList(peers, kindPeer, func(p api.Peer) string { return p.NodeID }, e.peers, e.peerIDs, e.Shape.peers, nil)
	if err != nil {
		return nil, err
	}
	e.sum += sum
	return e, nil
}

// encodeList encodes one list of the table into enc and ids (by position)
// and shapes (ID → hash), and returns the sum of its hashes. reuse, when
// set, offers an entry's encoding and hash from before.
func encodeList[T any](list []T, kind byte, id func(T) string, enc []json.RawMessage, ids []string, shapes map[string]uint64, reuse func(int) (json.RawMessage, uint64, bool)) (Sum, error) {
	var sum Sum
	for i, x := range list {
		if reuse != nil {
			if b, h, ok := reuse(i); ok {
				enc[i], ids[i] = b, id(x)
				shapes[id(x)] = h
				sum += Sum(h)
				continue
			}
		}
		b, err := json.Marshal(x)
		if err != nil {
			return 0, fmt.Errorf("encode %s %s: %w", kindName(kind), id(x), err)
		}
		h := hash(kind, b)
		enc[i], ids[i] = b, id(x)
		shapes[id(x)] = h
		sum += Sum(h)
	}
	return sum, nil
}

// Services is the encoded service table, a JSON array.
func (e *Encoded) Services() json.RawMessage { return joinRaw(e.services, nil) }

// PeersFor is the encoded peer list as node sees it, a JSON array.
func (e *Encoded) PeersFor(node string) json.RawMessage {
	return joinRaw(e.peers, func(i int) bool { return e.peerIDs[i] == node })
}

func joinRaw(xs []json.RawMessage, skip func(int) bool) json.RawMessage {
	n := 2
	for _, x := range xs {
		n += len(x) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	first := true
	for i, x := range xs {
		if skip != nil && skip(i) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, x...)
	}
	return append(b, ']')
}

// Diff is the change from base to cur, encoded as the body of an
// api.TableDelta without its base (which is per node: Encode the answer
// with WithBase). Entries are compared by hash; an upsert carries the
// whole service (or peer): one service's backends are a small part of the
// table, and a service with many backends is seldom changed in one backend
// alone for long (its tasks start and stop together).
func Diff(base *Shape, cur *Encoded) json.RawMessage {
	var up, peerUp []json.RawMessage
	var gone, peersGone []string
	for i, id := range cur.serviceIDs {
		if h, ok := base.services[id]; !ok || h != cur.Shape.services[id] {
			up = append(up, cur.services[i])
		}
	}
	for id := range base.services {
		if _, ok := cur.Shape.services[id]; !ok {
			gone = append(gone, id)
		}
	}
	for i, id := range cur.peerIDs {
		if h, ok := base.peers[id]; !ok || h != cur.Shape.peers[id] {
			peerUp = append(peerUp, cur.peers[i])
		}
	}
	for id := range base.peers {
		if _, ok := cur.Shape.peers[id]; !ok {
			peersGone = append(peersGone, id)
		}
	}
	sort.Strings(gone)
	sort.Strings(peersGone)
	var b []byte
	add := func(key string, v json.RawMessage) {
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, key...)
		b = append(b, '"', ':')
		b = append(b, v...)
	}
	strs := func(xs []string) json.RawMessage {
		out, _ := json.Marshal(xs) // strings always encode
		return out
	}
	if len(up) > 0 {
		add("services", joinRaw(up, nil))
	}
	if len(gone) > 0 {
		add("removed_services", strs(gone))
	}
	if len(peerUp) > 0 {
		add("peers", joinRaw(peerUp, nil))
	}
	if len(peersGone) > 0 {
		add("removed_peers", strs(peersGone))
	}
	return b
}

// WithBase is the JSON of an api.TableDelta: base and the body from Diff.
func WithBase(base Sum, body json.RawMessage) json.RawMessage {
	b := make([]byte, 0, len(body)+32)
	b = append(b, `{"base":"`...)
	b = append(b, base.String()...)
	b = append(b, '"')
	if len(body) > 0 {
		b = append(b, ',')
		b = append(b, body...)
	}
	return append(b, '}')
}

// Held is a node's copy of its table with the hash of each entry, so a
// delta is applied and checked by encoding only the entries it carries.
// A Held is never modified; Apply returns a new one.
type Held struct {
	Services []api.ServiceEndpoints
	Peers    []api.Peer
	shape    Shape
}

// Hold hashes a full table as a node received it (its own peer entry
// already left out).
func Hold(services []api.ServiceEndpoints, peers []api.Peer) (*Held, error) {
	e, err := Encode(services, peers)
	if err != nil {
		return nil, err
	}
	return &Held{Services: services, Peers: peers, shape: e.Shape}, nil
}

// Sum is the digest of the held table.
func (h *Held) Sum() Sum { return h.shape.sum }

// Apply returns the table d makes of h for node self. It refuses a delta
// against another base; the caller compares the result's Sum with the
// one the managers sent (api.Assignments.Table) and asks for the full
// table when they differ.
func (h *Held) Apply(d api.TableDelta, self string) (*Held, error) {
	if d.Base != h.shape.sum.String() {
		return nil, fmt.Errorf("table delta against %s, but the node holds %s", d.Base, h.shape.sum)
	}
	out := &Held{shape: Shape{services: make(map[string]uint64, len(h.shape.services)+len(d.Services)),
		peers: make(map[string]uint64, len(h.shape.peers)+len(d.Peers))}}
	for k, v := range h.shape.services {
		out.shape.services[k] = v
	}
	for k, v := range h.shape.peers {
		out.shape.peers[k] = v
	}
	var err error
	out.Services, err = merge(h.Services, d.RemovedServices, d.Services, out.shape.services, kindService,
		func(s api.ServiceEndpoints) string { return s.ServiceID }, func(api.ServiceEndpoints) bool { return false })
	if err != nil {
		return nil, err
	}
	out.Peers, err = merge(h.Peers, d.RemovedPeers, d.Peers, out.shape.peers, kindPeer,
		func(p api.Peer) string { return p.NodeID }, func(p api.Peer) bool { return p.NodeID == self })
	if err != nil {
		return nil, err
	}
	// The digest is summed from the lists as they came out, not kept up
	// to date beside them: a list that lost or doubled an entry must not
	// pass the check.
	out.shape.sum = 0
	for _, s := range out.Services {
		out.shape.sum += Sum(out.shape.services[s.ServiceID])
	}
	for _, p := range out.Peers {
		out.shape.sum += Sum(out.shape.peers[p.NodeID])
	}
	if len(out.Services) != len(out.shape.services) || len(out.Peers) != len(out.shape.peers) {
		out.shape.sum = ^out.shape.sum // can only be a bug here; never equal to the managers'
	}
	return out, nil
}

// merge applies one list's part of a delta: removed IDs go, upserts
// replace the entry of their ID or are added, entries the node must not
// hold (skip: its own peer entry) are ignored; shapes (ID → hash) is
// updated alike. The result is sorted by ID, as the managers send it.
func merge[T any](have []T, removed []string, upserts []T, shapes map[string]uint64, kind byte, id func(T) string, skip func(T) bool) ([]T, error) {
	drop := map[string]bool{}
	for _, k := range removed {
		delete(shapes, k)
		drop[k] = true
	}
	up := map[string]T{}
	for _, e := range upserts {
		if skip(e) {
			continue
		}
		b, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("encode %s %s of the delta: %w", kindName(kind), id(e), err)
		}
		shapes[id(e)] = hash(kind, b)
		up[id(e)] = e
	}
	out := make([]T, 0, len(have)+len(up))
	for _, e := range have {
		k := id(e)
		if drop[k] {
			continue
		}
		if n, ok := up[k]; ok {
			e = n
			delete(up, k)
		}
		out = append(out, e)
	}
	for _, e := range up {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return id(out[i]) < id(out[j]) })
	return out, nil
}

func kindName(kind byte) string {
	if kind == kindService {
		return "service"
	}
	return "peer"
}
