package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// CommandType is the first byte of every raft log entry Warren writes. The
// enum is append-only: a value, once released, keeps its meaning forever,
// because old log entries and snapshots are replayed by newer binaries.
type CommandType uint8

const (
	// CmdBatch is a Batch encoded as JSON.
	CmdBatch CommandType = 1
	// CmdSecretBatch is a Batch that also carries Secrets. It has its own
	// type so that a manager too old to know secrets stops on it instead of
	// applying the rest and silently dropping the secret changes.
	CmdSecretBatch CommandType = 2

	// CmdVolumeBatch is a Batch that also puts or deletes volumes. It has a
	// type of its own so that a manager too old to know volumes stops on it
	// rather than applying the rest and silently dropping the volumes. Batch
	// types are allocated in order and a manager that knows one knows every
	// lower one, so a batch is tagged with the highest type among the
	// features it uses.
	CmdVolumeBatch CommandType = 3

	// CmdRemoveNodeBatch is a Batch that removes nodes for good (RemoveNodes:
	// the node and a tombstone that revokes its certificate). A manager too
	// old to know tombstones stops on it rather than deleting the node and
	// going on accepting its certificate.
	CmdRemoveNodeBatch CommandType = 4

	// IgnorableCommandFlag marks command types that an older version may
	// skip when it does not know them (like Nomad's IgnoreUnknownTypeFlag).
	// Types below it are essential: a manager that cannot apply one must stop
	// rather than silently diverge from its peers.
	IgnorableCommandFlag CommandType = 128
)

// Kinds accepted in Expectation.Kind.
const (
	KindNode    = "node"
	KindService = "service"
	KindTask    = "task"
	KindCluster = "cluster"
	KindSecret  = string(api.KindSecret)
	KindConfig  = string(api.KindConfig)
	KindVolume  = "volume" // ID is the volume's name
)

// Expectation is one optimistic-concurrency precondition of a Batch: the
// object must currently be at Version (its Meta.Version), or must not exist
// when Version is 0. The cluster singleton ignores ID.
type Expectation struct {
	Kind    string `json:"kind"`
	ID      string `json:"id,omitempty"`
	Version uint64 `json:"version"`
}

// TaskStatusUpdate is a status report from the node a task is assigned to.
type TaskStatusUpdate struct {
	TaskID string         `json:"task_id"`
	NodeID string         `json:"node_id"`
	Status api.TaskStatus `json:"status"`
}

// NodeStatusUpdate is a heartbeat or registration from a node.
type NodeStatusUpdate struct {
	NodeID string         `json:"node_id"`
	Status api.NodeStatus `json:"status"`
}

// Batch is the one command that changes state. Everything in it is applied
// atomically, or nothing is.
//
// Within a kind, deletes are applied before puts, so a batch may replace a
// service by another of the same name. Kinds are applied in field order:
// cluster, nodes, removed nodes, services, tasks, task statuses, node statuses, images,
// volumes, secrets.
type Batch struct {
	// Now is the proposer's clock. The FSM stamps Meta.CreatedAt and
	// Meta.UpdatedAt with it and never calls time.Now, so replicas agree.
	Now time.Time `json:"now"`
	// Expect lists preconditions; any mismatch rejects the whole batch with
	// ErrConflict.
	Expect []Expectation `json:"expect,omitempty"`
	// Cluster, when set, replaces the singleton.
	Cluster *api.Cluster `json:"cluster,omitempty"`

	PutNodes    []api.Node `json:"put_nodes,omitempty"`
	DeleteNodes []string   `json:"delete_nodes,omitempty"`
	// RemoveNodes deletes nodes and records their tombstones (removed.go):
	// `node rm`, after which the node's certificate is refused.
	RemoveNodes []string `json:"remove_nodes,omitempty"`

	PutServices    []api.Service `json:"put_services,omitempty"`
	DeleteServices []string      `json:"delete_services,omitempty"`

	PutTasks    []api.Task `json:"put_tasks,omitempty"`
	DeleteTasks []string   `json:"delete_tasks,omitempty"`

	// TaskStatuses are applied only if the task exists, is assigned to
	// NodeID and the state does not move backwards; others are skipped
	// silently, because late and duplicate reports are normal.
	TaskStatuses []TaskStatusUpdate `json:"task_statuses,omitempty"`
	// NodeStatuses merge into the node (creating it if needed) and keep Spec.
	NodeStatuses []NodeStatusUpdate `json:"node_statuses,omitempty"`

	PutImages    []api.Image `json:"put_images,omitempty"`
	DeleteImages []string    `json:"delete_images,omitempty"`

	PutVolumes    []api.Volume `json:"put_volumes,omitempty"`
	DeleteVolumes []string     `json:"delete_volumes,omitempty"` // by name

	// Secrets changes secrets and configs (secrets.go); applied last, so
	// its checks see this batch's services.
	Secrets *SecretChanges `json:"secrets,omitempty"`
}

var (
	// ErrConflict rejects a batch whose expectations do not hold or that
	// would break a uniqueness rule. The proposer should re-read and retry.
	ErrConflict = errors.New("conflict")
	// ErrInvalid rejects a batch that can never apply (an object without ID).
	ErrInvalid = errors.New("invalid batch")
	// ErrUnknownCommand is returned for an essential command type this
	// version does not know. The FSM treats it as fatal.
	ErrUnknownCommand = errors.New("unknown command type")
)

// Encode turns a batch into a raft log entry: its command type byte
// (CmdBatch, or the type of the newest feature it uses), then JSON.
//
// JSON rather than msgpack or protobuf: the api types already carry JSON
// tags that define their wire form for the CLI and agents, so the log needs
// no second schema; unknown fields are ignored on decode, which lets newer
// proposers add fields; and a log entry can be read with jq when debugging.
// Decoding costs a few microseconds per task, far below the fsync per entry.
func Encode(b *Batch) ([]byte, error) {
	if b == nil {
		return nil, fmt.Errorf("encode batch: %w: nil", ErrInvalid)
	}
	body, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encode batch: %w", err)
	}
	out := make([]byte, 0, len(body)+1)
	t := CmdBatch
	if b.Secrets != nil {
		t = CmdSecretBatch
	}
	if len(b.PutVolumes) > 0 || len(b.DeleteVolumes) > 0 {
		t = CmdVolumeBatch
	}
	if len(b.RemoveNodes) > 0 {
		t = CmdRemoveNodeBatch
	}
	out = append(out, byte(t))
	return append(out, body...), nil
}

// decode splits a log entry into its type and, for a batch, its body.
// ignore is true for an unknown command type that is flagged ignorable.
func decode(data []byte) (b *Batch, ignore bool, err error) {
	if len(data) == 0 {
		return nil, false, fmt.Errorf("decode command: %w: empty entry", ErrInvalid)
	}
	switch t := CommandType(data[0]); {
	case t == CmdBatch || t == CmdSecretBatch || t == CmdVolumeBatch || t == CmdRemoveNodeBatch:
		b = new(Batch)
		if err := json.Unmarshal(data[1:], b); err != nil {
			return nil, false, fmt.Errorf("decode batch: %w: %w", ErrInvalid, err)
		}
		return b, false, nil
	case t&IgnorableCommandFlag != 0:
		return nil, true, nil
	default:
		return nil, false, fmt.Errorf("%w %d", ErrUnknownCommand, t)
	}
}
