package api

import (
	"fmt"
	"strings"
)

// Volumes are named storage that outlives a task. The control plane only
// records intent and placement; a driver on the node (the local directory
// driver or an out-of-process plugin) creates and mounts the data.

// LocalDriver is the built-in driver: a directory under the node's data dir.
const LocalDriver = "local"

// VolumeScope says from where a volume's data can be reached.
type VolumeScope string

const (
	// ScopeSingleNode data lives on one node; every task mounting the
	// volume is placed there.
	ScopeSingleNode VolumeScope = "single-node"
	// ScopeMultiNode data is reachable from any node with the driver (network
	// storage), so a task mounting it may go anywhere.
	ScopeMultiNode VolumeScope = "multi-node"
)

// VolumeAccess is how many tasks may use a volume at once, and how.
type VolumeAccess string

const (
	AccessSingleWriter VolumeAccess = "single-writer"
	AccessMultiReader  VolumeAccess = "multi-reader"
	AccessMultiWriter  VolumeAccess = "multi-writer"
)

// Volume is named storage. Volumes are keyed by Name, which is unique.
type Volume struct {
	Name   string       `json:"name"`
	Spec   VolumeSpec   `json:"spec"`
	Status VolumeStatus `json:"status"`
	Meta   Meta         `json:"meta"`
}

// VolumeSpec is what the user asked for (or what a service's first use
// implied); the system never modifies it.
type VolumeSpec struct {
	Name   string      `json:"name"`
	Driver string      `json:"driver"`
	Scope  VolumeScope `json:"scope"`
	// Access defaults to single-writer; Shared widens it.
	Access VolumeAccess `json:"access,omitempty"`
	// Shared allows more than one task (replicas > 1, several services) to
	// mount a single-node volume at once; they all land on its node.
	Shared bool `json:"shared,omitempty"`
	// Node pins a single-node volume to a node (ID), chosen at creation.
	Node string `json:"node,omitempty"`
	// Constraints restrict where a single-node volume may be created at its
	// first placement (same syntax as service constraints).
	Constraints []string          `json:"constraints,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	// Opts are handed to the driver unchanged (host, path, size...).
	Opts map[string]string `json:"opts,omitempty"`
}

// VolumeStatus is what the control plane decided.
type VolumeStatus struct {
	// Node is the node a single-node volume lives on: Spec.Node, or the
	// node of the first task placed with it. Empty until then.
	Node string `json:"node,omitempty"`
	// CreatedBy names the service whose first use created the volume;
	// empty for `volume create`.
	CreatedBy string `json:"created_by,omitempty"`
}

// SingleNode reports whether the volume's data lives on one node.
func (v *Volume) SingleNode() bool { return v.Spec.Scope != ScopeMultiNode }

// VolumeAttachment is what a node needs to mount one volume for a task: the
// leader copies it into the task when it places it, so the node never has to
// look anything up.
type VolumeAttachment struct {
	Name   string            `json:"name"`
	Driver string            `json:"driver"`
	Scope  VolumeScope       `json:"scope"`
	Access VolumeAccess      `json:"access,omitempty"`
	Opts   map[string]string `json:"opts,omitempty"`
}

// Attachment is the node-facing part of a volume.
func (v *Volume) Attachment() VolumeAttachment {
	return VolumeAttachment{Name: v.Name, Driver: v.Spec.Driver, Scope: v.Spec.Scope, Access: v.Spec.Access, Opts: v.Spec.Opts}
}

// VolumeDriverInfo is a driver a node reports it can run, with the
// capabilities the driver declared.
type VolumeDriverInfo struct {
	Name   string         `json:"name"`
	Scope  VolumeScope    `json:"scope"`
	Access []VolumeAccess `json:"access,omitempty"`
}

// VolumeMounts returns the names of the volumes a task spec mounts, in
// order, without duplicates.
func VolumeMounts(t TaskSpec) []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range t.Container.Mounts {
		if m.Type == MountVolume && m.Source != "" && !seen[m.Source] {
			seen[m.Source] = true
			out = append(out, m.Source)
		}
	}
	return out
}

// ValidVolumeName checks a volume name the way Docker does ([A-Za-z0-9]
// first, then [A-Za-z0-9_.-]): it becomes a directory name on nodes and a
// path segment in the API, so '/' in particular is refused.
func ValidVolumeName(name string) error {
	if name == "" || len(name) > 255 {
		return fmt.Errorf("volume name %q: must be 1-255 characters", name)
	}
	if strings.Contains(name, "/") {
		return fmt.Errorf("volume name %q: must not contain '/'", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return fmt.Errorf("volume name %q: must start with a letter or digit and hold only letters, digits, '_', '.' and '-'", name)
		}
	}
	return nil
}
