package volume

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/warrenhq/warren/controlplane/api"
)

// Local is the built-in driver: the volume is the directory <Dir>/<name>,
// which the Manager also uses as the mount point, so Mount has nothing to do.
type Local struct{ Dir string }

func (l Local) path(name string) string { return filepath.Join(l.Dir, name) }

func (Local) Capabilities(context.Context) (Capabilities, error) {
	return Capabilities{Scope: api.ScopeSingleNode, Access: []api.VolumeAccess{api.AccessSingleWriter, api.AccessMultiReader, api.AccessMultiWriter}}, nil
}

func (l Local) Create(_ context.Context, r Request) error {
	// 0755 as docker: the first copy from the image then sets the real
	// owner and mode.
	if err := os.MkdirAll(l.path(r.Name), 0o755); err != nil {
		return fmt.Errorf("local volume %s: %w", r.Name, err)
	}
	return nil
}

func (l Local) Delete(_ context.Context, r Request) error {
	if err := os.RemoveAll(l.path(r.Name)); err != nil {
		return fmt.Errorf("local volume %s: delete: %w", r.Name, err)
	}
	return nil
}

func (Local) Attach(context.Context, Request) error { return nil }

func (l Local) Mount(_ context.Context, r Request) error {
	if r.Target != "" && filepath.Clean(r.Target) != l.path(r.Name) {
		return fmt.Errorf("local volume %s: can only be used at %s, not %s", r.Name, l.path(r.Name), r.Target)
	}
	if fi, err := os.Stat(l.path(r.Name)); err != nil || !fi.IsDir() {
		return fmt.Errorf("local volume %s: not created on this node (%v)", r.Name, err)
	}
	return nil
}

func (Local) Unmount(context.Context, Request) error { return nil }
