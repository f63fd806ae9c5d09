package store

import (
	"fmt"
	"strings"

	"github.com/warrenhq/warren/controlplane/api"
)

// applyVolumes stores volumes by name. A volume's node, once recorded, is
// where its data is: a put that would move a single-node volume to another
// node is refused, because the data would not follow it. The leader records
// the node at first placement in the same batch as the task it placed, so a
// second leader's plan made on stale state conflicts instead of splitting
// one volume's tasks over two nodes.
func (t *txn) applyVolumes(b *Batch) error {
	for _, name := range b.DeleteVolumes {
		t.volumes.Delete([]byte(name))
	}
	for i := range b.PutVolumes {
		vol := &b.PutVolumes[i]
		if vol.Name == "" || strings.Contains(vol.Name, "/") {
			return fmt.Errorf("put volume %d: %w: name %q must be non-empty and without '/'", i, ErrInvalid, vol.Name)
		}
		var old *api.Meta
		if v, ok := t.volumes.Get([]byte(vol.Name)); ok {
			prev := v.(*api.Volume)
			old = &prev.Meta
			if prev.SingleNode() && prev.Status.Node != "" && vol.Status.Node != prev.Status.Node {
				return fmt.Errorf("volume %q lives on node %s, cannot move to %q: %w", vol.Name, prev.Status.Node, vol.Status.Node, ErrConflict)
			}
		}
		vol.Meta = t.stamp(old)
		t.volumes.Insert([]byte(vol.Name), vol)
	}
	return nil
}

// Volume returns one volume by name.
func (v *View) Volume(name string) (api.Volume, bool) {
	if x, ok := v.st.volumes.Get([]byte(name)); ok {
		return *x.(*api.Volume), true
	}
	return api.Volume{}, false
}

// Volumes returns every volume, sorted by name.
func (v *View) Volumes() []api.Volume { return list[api.Volume](v.st.volumes, nil) }

// VolumeUsers returns the services whose task template mounts the named
// volume, sorted by ID.
func (v *View) VolumeUsers(name string) []api.Service {
	var out []api.Service
	for _, s := range v.Services() {
		for _, n := range api.VolumeMounts(s.Spec.Task) {
			if n == name {
				out = append(out, s)
				break
			}
		}
	}
	return out
}
