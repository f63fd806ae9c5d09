package api

import "time"

// Cluster is the singleton cluster-wide object kept in raft.
type Cluster struct {
	ID        string             `json:"id"`
	CreatedAt time.Time          `json:"created_at"`
	Network   ClusterNetworkSpec `json:"network"`
	CA        ClusterCA          `json:"ca"`
	Tokens    JoinTokens         `json:"tokens"`
	// NodeCertTTL is how long issued node certificates live (default 90 days).
	NodeCertTTL Duration `json:"node_cert_ttl"`
	// NodeDownGrace is how long a node may miss heartbeats before it is marked down.
	NodeDownGrace Duration `json:"node_down_grace"`
	// Subnets maps node ID to its pod /24, allocated by the leader.
	Subnets map[string]string `json:"subnets,omitempty"`
	// VIPs maps service ID to its virtual IP.
	VIPs map[string]string `json:"vips,omitempty"`
	// Keys holds the data key of secrets and configs, wrapped by the KEK.
	Keys ClusterKeys `json:"keys"`
	// Autolock says whether managers keep the KEK on disk only under an
	// unlock key the operator holds.
	Autolock bool `json:"autolock,omitempty"`
	// Registry is how nodes pull images (api/registry.go).
	Registry RegistryConfig `json:"registry,omitempty"`
	Meta     Meta           `json:"meta"`
}

// ClusterNetworkSpec are the address ranges chosen at init.
type ClusterNetworkSpec struct {
	PodCIDR     string `json:"pod_cidr"`
	ServiceCIDR string `json:"service_cidr"`
	Domain      string `json:"domain"`
	WGPort      uint16 `json:"wg_port"`
}

// ClusterCA is the cluster's certificate authority. The key is encrypted with
// a key-encryption key that lives only in managers' data directories.
type ClusterCA struct {
	CertPEM         string `json:"cert_pem"`
	EncryptedKeyPEM []byte `json:"encrypted_key"`
	Digest          string `json:"digest"` // sha256 of the CA certificate DER, as in join tokens
}

// JoinTokens are stored hashed; the secrets themselves are only shown to the operator.
type JoinTokens struct {
	WorkerHash     string    `json:"worker_hash"`
	WorkerExpires  time.Time `json:"worker_expires"`
	ManagerHash    string    `json:"manager_hash"`
	ManagerExpires time.Time `json:"manager_expires"`
	// The tokens themselves, encrypted with the managers' key-encryption key,
	// so `warren cluster join-token worker` can show the current one again.
	WorkerSealed  []byte `json:"worker_sealed,omitempty"`
	ManagerSealed []byte `json:"manager_sealed,omitempty"`
}

// Image is an image archive loaded into the cluster (`warren image load`):
// managers keep the blob by digest so air-gapped nodes can fetch it over mTLS.
type Image struct {
	Name      string    `json:"name"`   // e.g. warren/demo:1
	Digest    string    `json:"digest"` // sha256:… of the archive
	Size      int64     `json:"size"`
	Holders   []string  `json:"holders"` // manager node IDs that hold the archive
	CreatedAt time.Time `json:"created_at"`
	// Platforms are the platforms the archive offers (one per manifest of
	// a multi-platform archive); empty when the archive does not say.
	Platforms []Platform `json:"platforms,omitempty"`
}
