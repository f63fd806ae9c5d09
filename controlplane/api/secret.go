package api

// Secrets and configs are named blobs an operator stores in the cluster and
// services mount into their tasks. They share one shape and differ only in
// who may see the value: a config's value is shown by inspect, a secret's
// never. Both are stored sealed (AES-256-GCM under the cluster's data key),
// because configs are often credentials in practice.

// SecretKind tells a secret from a config. Names are unique per kind.
type SecretKind string

const (
	KindSecret SecretKind = "secret"
	KindConfig SecretKind = "config"
)

// Size limits of a value, as in Swarm. They keep raft entries and node
// assignments small.
const (
	MaxSecretBytes = 500 << 10  // 500 KiB
	MaxConfigBytes = 1000 << 10 // 1000 KiB
)

// MaxBytes is the value size limit of the kind.
func (k SecretKind) MaxBytes() int {
	if k == KindConfig {
		return MaxConfigBytes
	}
	return MaxSecretBytes
}

// Secret is a stored secret or config.
type Secret struct {
	ID   string     `json:"id"`
	Kind SecretKind `json:"kind"`
	Spec SecretSpec `json:"spec"`
	// Sealed is the value under the cluster data key; the additional data
	// binds it to the kind and ID (secretbox.ValueAAD), so a sealed value
	// cannot be moved to another object.
	Sealed []byte `json:"sealed,omitempty"`
	// Size is the length of the value in bytes.
	Size int `json:"size"`
	// Rotation counts the changes of the value (1 at create).
	Rotation uint64 `json:"rotation"`
	Meta     Meta   `json:"meta"`
}

// SecretSpec is what the operator controls.
type SecretSpec struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
}

// SecretRef mounts a secret or config into a service's tasks. The same
// type serves ContainerSpec.Secrets and ContainerSpec.Configs.
type SecretRef struct {
	// ID is resolved from Name by the API when the service is written.
	ID   string `json:"id,omitempty"`
	Name string `json:"name"`
	// Target is an absolute path in the container; default
	// /run/secrets/<name> for secrets, /<name> for configs.
	Target string `json:"target"`
	UID    uint32 `json:"uid"`
	GID    uint32 `json:"gid"`
	// Mode is the file's permission bits (default 0444).
	Mode uint32 `json:"mode"`
	// Restart rolls the service's tasks when the value changes instead of
	// rewriting the file inside the running tasks.
	Restart bool `json:"restart,omitempty"`
	// Rotation is, for a Restart mount, the value's rotation the tasks are
	// made with; the API sets it, so a new value changes the task template
	// and the orchestrator rolls the tasks.
	Rotation uint64 `json:"rotation,omitempty"`
}

// SecretValue is one value inside a node's Assignments: only those the
// node's own tasks use. Sealed is the value sealed under the node's cache
// key (Assignments.CacheKey), so the agent may keep its assignments on disk
// without holding any secret in clear there.
type SecretValue struct {
	ID      string     `json:"id"`
	Kind    SecretKind `json:"kind"`
	Name    string     `json:"name"`
	Version uint64     `json:"version"`
	Sealed  []byte     `json:"sealed"`
}

// ClusterKeys are the cluster's wrapped data keys (docs/security.md, key
// hierarchy). WrappedDEK is the data-encryption key of secret and config
// values, sealed under the KEK; empty until the first secret is created.
type ClusterKeys struct {
	WrappedDEK []byte `json:"wrapped_dek,omitempty"`
	// UnlockKey is the autolock unlock key sealed under the KEK; empty
	// while autolock is off.
	UnlockKey []byte `json:"unlock_key,omitempty"`
}
