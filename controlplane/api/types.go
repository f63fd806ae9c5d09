package api

import (
	"time"
)

// NodeRole is what a node does in the cluster. Certificates carry it.
type NodeRole string

const (
	RoleManager NodeRole = "manager"
	RoleWorker  NodeRole = "worker"
)

// Availability is the operator's wish for a node (docker node update --availability).
type Availability string

const (
	AvailabilityActive Availability = "active" // accepts new tasks
	AvailabilityPause  Availability = "pause"  // keeps its tasks, gets no new ones
	AvailabilityDrain  Availability = "drain"  // replicated tasks move away
)

// NodeState is what the managers observed of a node.
type NodeState string

const (
	NodeUnknown NodeState = "unknown"
	NodeReady   NodeState = "ready"
	NodeDown    NodeState = "down"
)

// Resources is an amount of CPU (in nano-CPUs, 1e9 = one core) and memory (bytes).
type Resources struct {
	NanoCPUs    int64 `json:"nano_cpus,omitempty"`
	MemoryBytes int64 `json:"memory_bytes,omitempty"`
	Pids        int64 `json:"pids,omitempty"`
}

// Node is one machine in the cluster.
type Node struct {
	ID     string     `json:"id"`
	Spec   NodeSpec   `json:"spec"`
	Status NodeStatus `json:"status"`
	// Meta records when the node was created and last changed (raft index).
	Meta Meta `json:"meta"`
}

// NodeSpec is what operators control.
type NodeSpec struct {
	Role         NodeRole          `json:"role"`
	Availability Availability      `json:"availability"`
	Labels       map[string]string `json:"labels,omitempty"`
}

// NodeStatus is what the node and the managers report.
type NodeStatus struct {
	State    NodeState `json:"state"`
	Hostname string    `json:"hostname"`
	// Addr is the node's advertised address (IP) used for the mesh and published ports.
	Addr      string            `json:"addr"`
	OS        string            `json:"os"`
	Arch      string            `json:"arch"`
	Variant   string            `json:"variant,omitempty"` // v7 on arm/v7, v8 on some arm64
	Capacity  Resources         `json:"capacity"`
	Labels    map[string]string `json:"labels,omitempty"` // engine labels reported by the node itself
	Heartbeat time.Time         `json:"heartbeat"`
	Message   string            `json:"message,omitempty"`
	// Manager is set for manager nodes: raft address and whether it is the leader.
	Manager *ManagerStatus `json:"manager,omitempty"`
	// Network is the node's place in the overlay: its pod subnet and WireGuard identity.
	Network NodeNetwork `json:"network"`
	Version string      `json:"version,omitempty"`
	// VolumeDrivers are the volume drivers this node can run.
	VolumeDrivers []VolumeDriverInfo `json:"volume_drivers,omitempty"`
	// Traffic is the node's last NodeRegistration.Traffic: its dataplane's
	// counts for the tasks of services running a canary.
	Traffic []BackendTraffic `json:"traffic,omitempty"`
}

// ManagerStatus is raft membership as seen from the store.
type ManagerStatus struct {
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
	Leader   bool   `json:"leader"`
	Voter    bool   `json:"voter"`
}

// NodeNetwork is allocated by the control plane (Subnet) and reported by the node (keys, endpoint).
type NodeNetwork struct {
	Subnet      string `json:"subnet,omitempty"`        // e.g. 10.42.3.0/24, allocated in raft
	WGPublicKey string `json:"wg_public_key,omitempty"` // base64; the private key never leaves the node
	WGEndpoint  string `json:"wg_endpoint,omitempty"`   // host:port
	DNSAddr     string `json:"dns_addr,omitempty"`
	// AgentAddr is the node's own mTLS listener (host:port) from which
	// managers stream its tasks' logs.
	AgentAddr string `json:"agent_addr,omitempty"`
}

// Meta is bookkeeping set by the FSM.
type Meta struct {
	Version   uint64    `json:"version"` // raft index of the last change
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ServiceMode is replicated (N copies) or global (one per eligible node).
type ServiceMode string

const (
	ModeReplicated ServiceMode = "replicated"
	ModeGlobal     ServiceMode = "global"
)

// Service is a long-running workload.
type Service struct {
	ID   string      `json:"id"`
	Spec ServiceSpec `json:"spec"`
	// PreviousSpec is kept for rollback.
	PreviousSpec *ServiceSpec `json:"previous_spec,omitempty"`
	// SpecVersion increments on every spec change; tasks record the version they were made from.
	SpecVersion uint64 `json:"spec_version"`
	// Generation counts the operator's writes (create, update, scale,
	// promote, rollback, a canary step). The orchestrator echoes the one it
	// has acted on in Status.ObservedGeneration, so a client knows whether
	// the status it reads already answers its own write.
	Generation uint64         `json:"generation,omitempty"`
	Endpoint   Endpoint       `json:"endpoint"`
	Update     *UpdateStatus  `json:"update,omitempty"`
	Status     *ServiceStatus `json:"status,omitempty"`
	Meta       Meta           `json:"meta"`
}

// ServiceStatus is the orchestrator's account of a service, written in the
// same raft batch as the plan it comes from. Clients read convergence here
// instead of recomputing it from task spec versions.
type ServiceStatus struct {
	// ObservedGeneration is the service's Generation this status was
	// computed from.
	ObservedGeneration uint64 `json:"observed_generation"`
	// Desired is the number of slots (replicas, or eligible nodes).
	Desired int `json:"desired"`
	// Ready is the number of slots with a task that can take traffic
	// (running, and healthy when it has a check), of any version.
	Ready int `json:"ready"`
	// Converged: nothing is left to start or stop for the current state of
	// the rollout (an open canary or blue-green rollout converges once its
	// new version is deployed, awaiting promotion).
	Converged bool `json:"converged"`
	// Versions are the version labels with live tasks while more than one
	// runs or a rollout holds traffic weights, newest (current) first.
	Versions []VersionStatus `json:"versions,omitempty"`
}

// VersionStatus counts one version's tasks during a rollout.
type VersionStatus struct {
	Version string `json:"version"`
	Current bool   `json:"current,omitempty"`
	Ready   int    `json:"ready"`
	Desired int    `json:"desired"`
	// Weight is the percent of new connections the version gets, when the
	// rollout sets weights.
	Weight *uint32 `json:"weight,omitempty"`
}

// ServiceSpec is exactly what the user asked for; the system never modifies it.
type ServiceSpec struct {
	Name     string            `json:"name"`
	Labels   map[string]string `json:"labels,omitempty"`
	Mode     ServiceMode       `json:"mode"`
	Replicas uint64            `json:"replicas"`
	Task     TaskSpec          `json:"task"`
	Ports    []PortConfig      `json:"ports,omitempty"`
	Update   UpdateConfig      `json:"update"`
	// Version labels the task template for traffic splitting (e.g. "v2"). Empty means derived from SpecVersion.
	Version string `json:"version,omitempty"`
	// Disconnect is what happens to the tasks of a node cut off from the
	// managers, and when it returns (disconnect.go). nil: the defaults.
	Disconnect *DisconnectPolicy `json:"disconnect,omitempty"`
}

// TaskSpec is the container template of a service.
type TaskSpec struct {
	Container ContainerSpec `json:"container"`
	Resources ResourceReqs  `json:"resources"`
	Restart   RestartPolicy `json:"restart"`
	Placement Placement     `json:"placement"`
	Health    *HealthCheck  `json:"health,omitempty"`
}

// ContainerSpec is everything the runtime needs to build an OCI spec.
type ContainerSpec struct {
	Image      string            `json:"image"`
	Command    []string          `json:"command,omitempty"` // replaces the image entrypoint
	Args       []string          `json:"args,omitempty"`    // replaces the image cmd
	Env        []string          `json:"env,omitempty"`     // K=V
	Dir        string            `json:"dir,omitempty"`
	User       string            `json:"user,omitempty"`
	Hostname   string            `json:"hostname,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Mounts     []Mount           `json:"mounts,omitempty"`
	StopSignal string            `json:"stop_signal,omitempty"`
	StopGrace  Duration          `json:"stop_grace,omitempty"`
	ReadOnly   bool              `json:"read_only,omitempty"`
	// Secrets and Configs are mounted from a tmpfs on the node (api/secret.go).
	Secrets []SecretRef `json:"secrets,omitempty"`
	Configs []SecretRef `json:"configs,omitempty"`
	// ImageDigest pins Image: the manager resolves the tag once at create
	// and update (unless --no-resolve-image), and every node pulls exactly
	// this manifest or index; a tag moved later changes nothing.
	ImageDigest string `json:"image_digest,omitempty"`
	// ImagePlatforms are the platforms the pinned image offers (an index's
	// entries, or the one of a single manifest); the scheduler places tasks
	// only on nodes of one of them. Empty: unknown, any node.
	ImagePlatforms []Platform `json:"image_platforms,omitempty"`
	// RegistryAuth is the ID of the service's own registry credential
	// (--with-registry-auth); without it nodes use the login of the image's
	// registry host, if there is one.
	RegistryAuth string `json:"registry_auth,omitempty"`
}

// MountType is bind, tmpfs or volume.
type MountType string

const (
	MountBind   MountType = "bind"
	MountTmpfs  MountType = "tmpfs"
	MountVolume MountType = "volume"
)

// Mount is one filesystem made visible in the container.
type Mount struct {
	Type      MountType `json:"type"`
	Source    string    `json:"source,omitempty"`
	Target    string    `json:"target"`
	ReadOnly  bool      `json:"read_only,omitempty"`
	TmpfsSize int64     `json:"tmpfs_size,omitempty"`
	// NoCopy keeps the image's content at Target out of a new, empty volume.
	NoCopy bool `json:"no_copy,omitempty"`
}

// ResourceReqs are limits enforced by cgroups and reservations honoured by the scheduler.
type ResourceReqs struct {
	Limits       Resources `json:"limits"`
	Reservations Resources `json:"reservations"`
}

// RestartCondition says when a stopped task is replaced.
type RestartCondition string

const (
	RestartNone      RestartCondition = "none"
	RestartOnFailure RestartCondition = "on-failure"
	RestartAny       RestartCondition = "any"
)

// RestartPolicy is applied by the node agent (it works while managers are unreachable).
type RestartPolicy struct {
	Condition   RestartCondition `json:"condition"`
	Delay       Duration         `json:"delay"` // first delay; doubles up to MaxDelay
	MaxDelay    Duration         `json:"max_delay,omitempty"`
	MaxAttempts uint64           `json:"max_attempts"` // 0 = unlimited
	Window      Duration         `json:"window,omitempty"`
}

// Placement constrains where tasks go.
type Placement struct {
	Constraints []string `json:"constraints,omitempty"` // node.labels.k==v, node.role!=manager, node.hostname==x
	MaxReplicas uint64   `json:"max_replicas_per_node,omitempty"`
	Preferences []string `json:"preferences,omitempty"`
}

// HealthCheckKind selects how a task is probed.
type HealthCheckKind string

const (
	HealthExec HealthCheckKind = "exec"
	HealthHTTP HealthCheckKind = "http"
	HealthTCP  HealthCheckKind = "tcp"
)

// HealthCheck probes a running task.
type HealthCheck struct {
	Kind        HealthCheckKind `json:"kind"`
	Command     []string        `json:"command,omitempty"` // exec
	Path        string          `json:"path,omitempty"`    // http
	Port        uint16          `json:"port,omitempty"`    // http and tcp; defaults to the first target port
	Interval    Duration        `json:"interval"`
	Timeout     Duration        `json:"timeout"`
	Retries     uint64          `json:"retries"`
	StartPeriod Duration        `json:"start_period,omitempty"`
	// KeepUnhealthy opts out of replacing a task that became unhealthy
	// (it keeps running, without traffic).
	KeepUnhealthy bool `json:"keep_unhealthy,omitempty"`
}

// Protocol is tcp or udp.
type Protocol string

const (
	TCP Protocol = "tcp"
	UDP Protocol = "udp"
)

// PortConfig exposes a container port on the service VIP and optionally on every node.
type PortConfig struct {
	Protocol      Protocol `json:"protocol"`
	TargetPort    uint16   `json:"target_port"`
	PublishedPort uint16   `json:"published_port,omitempty"` // 0 = VIP only
}

// UpdateStrategy is how a spec change is rolled out.
type UpdateStrategy string

const (
	StrategyRolling   UpdateStrategy = "rolling"
	StrategyBlueGreen UpdateStrategy = "blue-green"
	StrategyCanary    UpdateStrategy = "canary"
)

// UpdateConfig controls rollouts.
type UpdateConfig struct {
	Strategy      UpdateStrategy `json:"strategy"`
	Parallelism   uint64         `json:"parallelism"`
	Delay         Duration       `json:"delay,omitempty"`
	Order         string         `json:"order,omitempty"`          // stop-first | start-first
	CanaryWeight  uint32         `json:"canary_weight,omitempty"`  // percent of new connections to the new version
	FailureAction string         `json:"failure_action,omitempty"` // pause | rollback | continue
	// Monitor is how long a new task may take to become ready (running and
	// healthy) before it counts as failed. 0: the health check's start
	// period + interval × retries (+ timeout), or no limit without a check.
	Monitor Duration `json:"monitor,omitempty"`
	// MaxFailureRatio is the fraction of slots whose new task may fail
	// before the failure action applies (0: any failure).
	MaxFailureRatio float64 `json:"max_failure_ratio,omitempty"`
	// Keep is how long the previous version stays, without traffic, after
	// a canary or blue-green promotion, so that a rollback within it is a
	// weight flip. 0: DefaultKeep (30 s).
	Keep Duration `json:"keep,omitempty"`
	// CanarySteps are the weights a canary moves through by itself, one
	// every CanaryInterval once the step's tasks are ready; 100 promotes.
	CanarySteps    []uint32 `json:"canary_steps,omitempty"`
	CanaryInterval Duration `json:"canary_interval,omitempty"`
	// CanaryMaxErrorRate turns on canary analysis: a canary whose share of
	// failed connections (connect failures and resets, as every node's
	// dataplane counts them) exceeds this fraction, and the stable
	// version's, is rolled back. 0: off.
	CanaryMaxErrorRate float64 `json:"canary_max_error_rate,omitempty"`
	// CanaryMinConnections is how many connections the canary must have
	// had before analysis judges it, and before an automatic step moves on
	// (0: DefaultCanaryMinConnections).
	CanaryMinConnections uint64 `json:"canary_min_connections,omitempty"`
}

// UpdateStatus is the state of the current rollout.
type UpdateStatus struct {
	State       UpdateState `json:"state"`
	Message     string      `json:"message,omitempty"`
	StartedAt   time.Time   `json:"started_at"`
	CompletedAt time.Time   `json:"completed_at,omitempty"`
	// Weights per version label while a canary or blue/green rollout is open
	// (and, after a promotion, while the previous version is kept).
	Weights map[string]uint32 `json:"weights,omitempty"`
	// KeepUntil, after a promotion, is when the previous version's tasks
	// are stopped; until then they run without traffic and a rollback only
	// flips the weights back.
	KeepUntil time.Time `json:"keep_until,omitempty"`
	// StepAt is when an automatic canary step (UpdateConfig.CanarySteps)
	// moves to the next weight.
	StepAt time.Time `json:"step_at,omitempty"`
}

// Endpoint is what the control plane allocated for a service's traffic.
type Endpoint struct {
	VIP   string       `json:"vip,omitempty"` // from the service range, e.g. 10.43.0.7
	Ports []PortConfig `json:"ports,omitempty"`
}

// TaskState only moves forward, in this order.
type TaskState string

const (
	TaskNew       TaskState = "new"
	TaskPending   TaskState = "pending"   // waiting for placement
	TaskAssigned  TaskState = "assigned"  // placed on a node
	TaskPreparing TaskState = "preparing" // image, container, network
	TaskStarting  TaskState = "starting"
	TaskRunning   TaskState = "running"
	TaskComplete  TaskState = "complete" // exited 0
	TaskShutdown  TaskState = "shutdown" // stopped on request
	TaskFailed    TaskState = "failed"   // exited non-zero or could not start
	TaskRejected  TaskState = "rejected" // the node refused it
	TaskOrphaned  TaskState = "orphaned" // node gone
	TaskRemove    TaskState = "remove"   // desired only: stop and delete

	// TaskUnknown comes between running and complete: the task's node is
	// down. It may still run there (the node is only cut off) or not (it
	// died); only the node can say, and does when it returns, so this is
	// the one state a task leaves for an earlier one (store:
	// applyTaskStatuses).
	TaskUnknown TaskState = "unknown"
)

// order is the state's place in the task lifecycle; an unknown string is
// placed with TaskNew. A switch rather than a map: the leader's plan asks
// this several times per task, and hashing the string was a tenth of the
// leader's CPU.
func (s TaskState) order() int {
	switch s {
	case TaskPending:
		return 1
	case TaskAssigned:
		return 2
	case TaskPreparing:
		return 3
	case TaskStarting:
		return 4
	case TaskRunning:
		return 5
	case TaskUnknown:
		return 6
	case TaskComplete:
		return 7
	case TaskShutdown:
		return 8
	case TaskFailed:
		return 9
	case TaskRejected:
		return 10
	case TaskOrphaned:
		return 11
	case TaskRemove:
		return 12
	}
	return 0
}

// Before reports whether s comes before o in the task lifecycle.
func (s TaskState) Before(o TaskState) bool { return s.order() < o.order() }

// Terminal reports whether a task in this state will never run again.
func (s TaskState) Terminal() bool { return s.order() >= TaskComplete.order() }

// HealthState of a running task.
type HealthState string

const (
	HealthNone      HealthState = ""         // no check configured
	HealthStarting  HealthState = "starting" // inside the start period
	HealthHealthy   HealthState = "healthy"
	HealthUnhealthy HealthState = "unhealthy"
)

// Task is one scheduled instance of a service.
type Task struct {
	ID        string `json:"id"`
	ServiceID string `json:"service_id"`
	// Slot is the replica number (1..N) for replicated services; 0 for global ones.
	Slot        uint64   `json:"slot"`
	NodeID      string   `json:"node_id,omitempty"`
	Spec        TaskSpec `json:"spec"`
	SpecVersion uint64   `json:"spec_version"`
	// Version is the traffic-splitting label of the spec this task runs.
	Version      string    `json:"version"`
	ServiceName  string    `json:"service_name"`
	DesiredState TaskState `json:"desired_state"`
	// StopReason says why the orchestrator asked the task to stop when it
	// was not a spec change or a scale down (an unhealthy task replaced).
	StopReason string     `json:"stop_reason,omitempty"`
	Status     TaskStatus `json:"status"`
	// Volumes are the volumes the task mounts, resolved by the leader when it
	// placed the task.
	Volumes []VolumeAttachment `json:"volumes,omitempty"`
	// Drain is set while and after the task is taken out of every node's
	// service table before it stops (drain.go).
	Drain *Drain `json:"drain,omitempty"`
	// Rejoined is set by the store when the task's node, back from down,
	// reports it again: a slot holding it and a replacement is resolved by
	// the service's reconcile policy, any other duplicate by readiness.
	Rejoined bool `json:"rejoined,omitempty"`
	Meta     Meta `json:"meta"`
}

// TaskStatus is reported by the node agent (or the scheduler while pending).
type TaskStatus struct {
	State       TaskState   `json:"state"`
	Timestamp   time.Time   `json:"timestamp"`
	Message     string      `json:"message,omitempty"`
	Err         string      `json:"err,omitempty"`
	ContainerID string      `json:"container_id,omitempty"`
	PID         int         `json:"pid,omitempty"`
	ExitCode    int         `json:"exit_code,omitempty"`
	Addr        string      `json:"addr,omitempty"` // the task's IP on the pod network
	Health      HealthState `json:"health,omitempty"`
	Restarts    uint64      `json:"restarts,omitempty"`
	// Pull is how far the node is in pulling the task's image, while it
	// pulls (a value, not a pointer, so statuses stay comparable with ==).
	Pull PullProgress `json:"pull,omitzero"`
}

// PullProgress is a node's pull of an image: bytes of its layers fetched
// (Done, layers already in the node's store count as fetched) of the
// layers known so far (Total grows while manifests are read).
type PullProgress struct {
	Ref   string `json:"ref,omitempty"`
	Done  int64  `json:"done,omitempty"`
	Total int64  `json:"total,omitempty"`
}

// Duration is a time.Duration that reads and writes as "1m30s" in JSON and YAML.
type Duration time.Duration

// D is a convenience conversion.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
