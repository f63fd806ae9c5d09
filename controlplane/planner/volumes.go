package planner

import (
	"github.com/warrenhq/warren/controlplane/scheduler"
	"github.com/warrenhq/warren/controlplane/store"
)

// addVolumes records the volumes a plan created or bound, in the batch that
// places their first task. Each is guarded by the version the plan saw (0:
// must not exist yet), so two plans cannot bind one volume to two nodes.
func addVolumes(b *store.Batch, vols []scheduler.VolumePlacement) {
	for _, vp := range vols {
		ver := uint64(0)
		if vp.Exists {
			ver = vp.Volume.Meta.Version
		}
		b.Expect = append(b.Expect, store.Expectation{Kind: store.KindVolume, ID: vp.Volume.Name, Version: ver})
		b.PutVolumes = append(b.PutVolumes, vp.Volume)
	}
}
