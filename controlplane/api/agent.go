package api

// The agent-facing contract. A node agent asks a manager for its
// Assignments with a blocking query (the last Index it saw); the answer holds
// only what this node needs: its own tasks, the service table its dataplane
// compiles into kernel maps, and its mesh peers. Status flows back as
// StatusReports. Nothing in here is addressed to another node.

// Assignments is a node's complete desired state at raft index Index.
type Assignments struct {
	Index    uint64             `json:"index"`
	NodeID   string             `json:"node_id"`
	Tasks    []Task             `json:"tasks"`
	Services []ServiceEndpoints `json:"services"`
	Peers    []Peer             `json:"peers"`
	// Cluster-wide network settings the agent needs to configure CNI, mesh and DNS.
	Network ClusterNetwork `json:"network"`
	// Role is what the operators want this node to be; when it differs from
	// the node's certificate the node changes role (node promote/demote).
	Role NodeRole `json:"role,omitempty"`
	// Managers are the API addresses of every manager, so the agent can fail over.
	Managers []string `json:"managers"`
	// ManagerIDs are the node IDs of those managers: the node serves its
	// tasks' logs to these alone, so a manager removed or demoted is
	// refused though its certificate has not expired. Empty from managers
	// that predate it (the certificate's role alone decides then).
	ManagerIDs []string `json:"manager_ids,omitempty"`
	// Secrets are the values of the secrets and configs this node's tasks
	// mount, sealed under CacheKey. CacheKey is derived by the managers for
	// this node alone; the agent keeps it in memory and never writes it to
	// its cache (see docs/security.md).
	Secrets  []SecretValue `json:"secrets,omitempty"`
	CacheKey []byte        `json:"cache_key,omitempty"`
	// StopAfter maps the ID of a service with tasks on this node to its
	// DisconnectPolicy.StopAfter: the node stops those tasks by itself once
	// it has been out of touch with every manager that long.
	StopAfter map[string]Duration `json:"stop_after,omitempty"`
	// Registry is how the node pulls images (CA, plain-HTTP hosts,
	// mirrors); credentials travel in Secrets, kind registry-auth.
	Registry RegistryConfig `json:"registry,omitempty"`
	// Table is the digest of Services and Peers as this node holds them
	// (controlplane/tabledelta): the agent sends it back as its base, and
	// checks with it a delta it applied. Empty from managers that send no
	// deltas.
	Table string `json:"table,omitempty"`
	// Delta, when set, stands for Services and Peers (both empty then): the
	// change from the table the agent named as its base to this one. Only
	// an agent that named a base gets one; every other answer is full.
	Delta *TableDelta `json:"delta,omitempty"`
}

// TableDelta is the change from one service table (and peer list) to
// another: whole services and peers upserted, by ID, and the IDs removed.
type TableDelta struct {
	// Base is the Table digest of the table it applies to.
	Base            string             `json:"base"`
	Services        []ServiceEndpoints `json:"services,omitempty"`
	RemovedServices []string           `json:"removed_services,omitempty"`
	Peers           []Peer             `json:"peers,omitempty"`
	RemovedPeers    []string           `json:"removed_peers,omitempty"`
}

// ClusterNetwork are the cluster's address ranges.
type ClusterNetwork struct {
	PodCIDR     string `json:"pod_cidr"`     // 10.42.0.0/16
	ServiceCIDR string `json:"service_cidr"` // 10.43.0.0/16
	Domain      string `json:"domain"`       // warren.local
	Subnet      string `json:"subnet"`       // this node's /24
}

// BackendHealth is a backend's eligibility for new connections.
type BackendHealth string

const (
	BackendActive      BackendHealth = "active"
	BackendTerminating BackendHealth = "terminating"
	BackendUnhealthy   BackendHealth = "unhealthy"
)

// ServiceEndpoints is one service as the dataplane sees it.
type ServiceEndpoints struct {
	ServiceID string         `json:"service_id"`
	Name      string         `json:"name"`
	VIP       string         `json:"vip"`
	Ports     []PortConfig   `json:"ports"`
	Groups    []VersionGroup `json:"groups"`
	// Scope and Aliases give a service of a stack its Compose name: a task
	// of any service with the same Scope (the stack) resolves each alias to
	// this service, as containers on a Compose project's network do.
	Scope   string   `json:"scope,omitempty"`
	Aliases []string `json:"aliases,omitempty"`
}

// Labels `warren apply` puts on the services of a stack; the endpoints
// turn them into Scope and Aliases.
const (
	LabelStack        = "com.warren.stack"
	LabelStackService = "com.warren.stack.service"
)

// VersionGroup is a set of backends running one version, with its traffic weight.
type VersionGroup struct {
	Version  string    `json:"version"`
	Weight   uint32    `json:"weight"`
	Backends []Backend `json:"backends"`
}

// Backend is one task's address.
type Backend struct {
	TaskID string        `json:"task_id"`
	NodeID string        `json:"node_id"`
	Addr   string        `json:"addr"`
	Health BackendHealth `json:"health"`
}

// Peer is another node on the mesh.
type Peer struct {
	NodeID      string `json:"node_id"`
	Addr        string `json:"addr"`
	Subnet      string `json:"subnet"`
	WGPublicKey string `json:"wg_public_key"`
	WGEndpoint  string `json:"wg_endpoint"`
}

// StatusReport carries task status changes from a node to the managers.
type StatusReport struct {
	NodeID string                `json:"node_id"`
	Tasks  map[string]TaskStatus `json:"tasks"`
}

// NodeRegistration is sent by an agent when it starts and on every heartbeat.
type NodeRegistration struct {
	NodeID   string            `json:"node_id"`
	Hostname string            `json:"hostname"`
	Addr     string            `json:"addr"`
	OS       string            `json:"os"`
	Arch     string            `json:"arch"`
	Variant  string            `json:"variant,omitempty"`
	Capacity Resources         `json:"capacity"`
	Labels   map[string]string `json:"labels,omitempty"`
	Network  NodeNetwork       `json:"network"`
	Version  string            `json:"version,omitempty"`
	// VolumeDrivers are the volume drivers installed on the node.
	VolumeDrivers []VolumeDriverInfo `json:"volume_drivers,omitempty"`
	// TableIndex is the index of the assignments whose service table the
	// node's dataplane and DNS have applied; 0 until it applied any. The
	// leader keeps it in memory and gates task stops on it (Drain).
	TableIndex uint64 `json:"table_index,omitempty"`
	// Traffic is the dataplane's count of connections to the tasks of
	// services splitting traffic between versions (BackendTraffic), sorted
	// by task ID.
	Traffic []BackendTraffic `json:"traffic,omitempty"`
}
