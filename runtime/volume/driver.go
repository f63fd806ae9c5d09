package volume

import (
	"context"
	"errors"

	"github.com/warrenhq/warren/controlplane/api"
)

// Version is the plugin contract's version, sent in every request.
const Version = "1"

// Request is what a driver gets for every operation; the fields an
// operation does not use are empty.
type Request struct {
	Version string `json:"version"`
	Name    string `json:"name"`
	// Opts are the volume's driver options, as given to `volume create`.
	Opts   map[string]string `json:"opts,omitempty"`
	Access api.VolumeAccess  `json:"access,omitempty"`
	// Node is this node's ID (attach).
	Node string `json:"node,omitempty"`
	// Target is the directory to mount at or unmount (mount, unmount). It
	// exists and is empty when mount is called.
	Target   string `json:"target,omitempty"`
	ReadOnly bool   `json:"read_only,omitempty"`
	// StateDir is a directory the driver may keep per-volume state in; it
	// survives restarts of warren and of the node.
	StateDir string `json:"state_dir,omitempty"`
}

// Capabilities are what a driver declares about its volumes.
type Capabilities struct {
	Scope  api.VolumeScope    `json:"scope"`
	Access []api.VolumeAccess `json:"access,omitempty"`
}

// Driver is one kind of volume storage. Every method is idempotent: Create
// of an existing volume, Mount of a mounted one, Unmount or Delete of one
// that is gone all succeed.
type Driver interface {
	Capabilities(ctx context.Context) (Capabilities, error)
	// Create makes the volume's storage exist (once per volume, on the
	// first node that uses it).
	Create(ctx context.Context, r Request) error
	// Delete destroys the volume's data.
	Delete(ctx context.Context, r Request) error
	// Attach makes the storage reachable from this node (a network volume's
	// session; nothing for a local directory).
	Attach(ctx context.Context, r Request) error
	// Mount makes the volume's data visible at r.Target.
	Mount(ctx context.Context, r Request) error
	// Unmount undoes Mount.
	Unmount(ctx context.Context, r Request) error
}

// ErrUnknownDriver is returned (wrapped) for a driver this node does not have.
var ErrUnknownDriver = errors.New("unknown volume driver")

// ErrUnsupported is returned (wrapped) where the OS cannot mount plugin volumes.
var ErrUnsupported = errors.New("not supported on this OS")
