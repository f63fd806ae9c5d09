package scheduler

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/warrenhq/warren/controlplane/api"
)

func mounts(names ...string) func(*api.Task) {
	return func(t *api.Task) {
		for _, n := range names {
			t.Spec.Container.Mounts = append(t.Spec.Container.Mounts, api.Mount{Type: api.MountVolume, Source: n, Target: "/" + n})
		}
	}
}

func localVol(name, node string, mut ...func(*api.Volume)) api.Volume {
	v := api.Volume{Name: name, Spec: api.VolumeSpec{Name: name, Driver: api.LocalDriver, Scope: api.ScopeSingleNode, Access: api.AccessSingleWriter},
		Status: api.VolumeStatus{Node: node}, Meta: api.Meta{Version: 7}}
	for _, m := range mut {
		m(&v)
	}
	return v
}

func shared(v *api.Volume) { v.Spec.Shared = true }

func drivers(names ...string) func(*api.Node) {
	return func(n *api.Node) {
		for _, d := range names {
			n.Status.VolumeDrivers = append(n.Status.VolumeDrivers, api.VolumeDriverInfo{Name: d, Scope: api.ScopeMultiNode})
		}
	}
}

func drained(n *api.Node) { n.Spec.Availability = api.AvailabilityDrain }

func TestScheduleVolumesTable(t *testing.T) {
	sshfs := api.Volume{Name: "remote", Spec: api.VolumeSpec{Name: "remote", Driver: "sshfs", Scope: api.ScopeMultiNode, Opts: map[string]string{"host": "h"}}}
	cases := []struct {
		name     string
		nodes    []api.Node
		volumes  []api.Volume
		existing []api.Task
		pending  []api.Task
		// want maps task ID to node ID, or to "!"+reason when unplaced.
		want map[string]string
		// bound maps the volumes the plan records to their node ("" for a
		// multi-node volume); created are those that did not exist.
		bound   map[string]string
		created []string
	}{
		{
			name:    "a task goes where its local volume lives",
			nodes:   []api.Node{node("a", 4, 4), node("b", 4, 4), node("c", 4, 4)},
			volumes: []api.Volume{localVol("db-data", "b")},
			pending: []api.Task{task("t1", "pg", 1, mounts("db-data"))},
			want:    map[string]string{"t1": "b"},
		},
		{
			name:    "the issue's explanation: two do not hold it, the holder lacks memory",
			nodes:   []api.Node{node("a", 4, 4), node("b", 4, 1), node("c", 4, 4)},
			volumes: []api.Volume{localVol("db-data", "b")},
			pending: []api.Task{task("t1", "pg", 1, mounts("db-data"), withMem(2))},
			want:    map[string]string{"t1": "!0/3 nodes available: 2 do not hold volume db-data, 1 insufficient memory"},
		},
		{
			name:    "the volume's node drained: the task waits for it, saying why",
			nodes:   []api.Node{node("a", 4, 4, drained), node("b", 4, 4)},
			volumes: []api.Volume{localVol("db-data", "a")},
			pending: []api.Task{task("t1", "pg", 1, mounts("db-data"))},
			want:    map[string]string{"t1": "!0/2 nodes available: 1 not active (paused or drained), 1 do not hold volume db-data"},
		},
		{
			name:     "first use of a volume that does not exist creates it where the task lands",
			nodes:    []api.Node{node("a", 4, 4), node("b", 4, 4)},
			existing: []api.Task{task("o1", "other", 1, on("a"))},
			pending:  []api.Task{task("t1", "pg", 1, mounts("fresh"))},
			want:     map[string]string{"t1": "b"},
			bound:    map[string]string{"fresh": "b"},
			created:  []string{"fresh"},
		},
		{
			name:    "an unbound volume is bound at first placement, within its constraints",
			nodes:   []api.Node{node("a", 4, 4), node("b", 4, 4, label("disk", "ssd")), node("c", 4, 4)},
			volumes: []api.Volume{localVol("db-data", "", func(v *api.Volume) { v.Spec.Constraints = []string{"node.labels.disk==ssd"} })},
			pending: []api.Task{task("t1", "pg", 1, mounts("db-data"))},
			want:    map[string]string{"t1": "b"},
			bound:   map[string]string{"db-data": "b"},
		},
		{
			name:    "no node meets an unbound volume's constraints",
			nodes:   []api.Node{node("a", 4, 4), node("b", 4, 4)},
			volumes: []api.Volume{localVol("db-data", "", func(v *api.Volume) { v.Spec.Constraints = []string{"node.labels.disk==ssd"} })},
			pending: []api.Task{task("t1", "pg", 1, mounts("db-data"))},
			want:    map[string]string{"t1": "!0/2 nodes available: 2 did not match the constraints of volume db-data"},
		},
		{
			name:     "two tasks of a shared unbound volume land together on the node the first picked",
			nodes:    []api.Node{node("a", 4, 4), node("b", 4, 4), node("c", 4, 4)},
			existing: []api.Task{task("o1", "other", 1, on("b")), task("o2", "other", 2, on("c"))},
			volumes:  []api.Volume{localVol("cache", "", shared)},
			pending:  []api.Task{task("t1", "web", 1, mounts("cache")), task("t2", "web", 2, mounts("cache"))},
			want:     map[string]string{"t1": "a", "t2": "a"},
			bound:    map[string]string{"cache": "a"},
		},
		{
			name:     "replicas > 1 on a single-node volume that is not shared: the second is refused",
			nodes:    []api.Node{node("a", 4, 4), node("b", 4, 4)},
			existing: []api.Task{task("o1", "other", 1, on("b"))},
			volumes:  []api.Volume{localVol("db-data", "")},
			pending:  []api.Task{task("t1", "pg", 1, mounts("db-data")), task("t2", "pg", 2, mounts("db-data"))},
			want: map[string]string{"t1": "a",
				"t2": "!0/2 nodes available: 1 do not hold volume db-data, 1 refused: volume db-data is in use by another task and not shared"},
			bound: map[string]string{"db-data": "a"},
		},
		{
			name:     "another service's running task holds a volume that is not shared",
			nodes:    []api.Node{node("a", 4, 4)},
			volumes:  []api.Volume{localVol("db-data", "a")},
			existing: []api.Task{task("o1", "other", 1, on("a"), mounts("db-data"))},
			pending:  []api.Task{task("t1", "pg", 1, mounts("db-data"))},
			want:     map[string]string{"t1": "!0/1 nodes available: 1 refused: volume db-data is in use by another task and not shared"},
		},
		{
			name:     "the replacement of the same slot takes the volume over while the old task stops",
			nodes:    []api.Node{node("a", 4, 4), node("b", 4, 4)},
			volumes:  []api.Volume{localVol("db-data", "a")},
			existing: []api.Task{task("old", "pg", 1, on("a"), mounts("db-data"), func(t *api.Task) { t.DesiredState = api.TaskShutdown })},
			pending:  []api.Task{task("new", "pg", 1, mounts("db-data"))},
			want:     map[string]string{"new": "a"},
		},
		{
			name:    "a multi-node volume goes anywhere its driver runs",
			nodes:   []api.Node{node("a", 4, 4), node("b", 4, 4, drivers("sshfs")), node("c", 4, 4)},
			volumes: []api.Volume{sshfs},
			pending: []api.Task{task("t1", "pg", 1, mounts("remote"))},
			want:    map[string]string{"t1": "b"},
		},
		{
			name:    "no node runs the driver",
			nodes:   []api.Node{node("a", 4, 4), node("b", 4, 4)},
			volumes: []api.Volume{sshfs},
			pending: []api.Task{task("t1", "pg", 1, mounts("remote"))},
			want:    map[string]string{"t1": "!0/2 nodes available: 2 do not have volume driver sshfs"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := ScheduleVolumes(tc.nodes, tc.existing, tc.pending, tc.volumes, rand.New(rand.NewPCG(1, 2)))
			got := map[string]string{}
			for _, pl := range p.Placements {
				got[pl.TaskID] = pl.NodeID
				var task api.Task
				for _, pt := range tc.pending {
					if pt.ID == pl.TaskID {
						task = pt
					}
				}
				if len(pl.Volumes) != len(api.VolumeMounts(task.Spec)) {
					t.Errorf("placement of %s carries %d volume attachments, want %d", pl.TaskID, len(pl.Volumes), len(api.VolumeMounts(task.Spec)))
				}
			}
			for _, u := range p.Unplaced {
				got[u.TaskID] = "!" + u.Reason
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("plan = %v\nwant   %v", got, tc.want)
			}
			bound := map[string]string{}
			var created []string
			for _, v := range p.Volumes {
				bound[v.Volume.Name] = v.Volume.Status.Node
				if !v.Exists {
					created = append(created, v.Volume.Name)
					if v.Volume.Spec.Driver != api.LocalDriver || v.Volume.Spec.Scope != api.ScopeSingleNode {
						t.Errorf("created volume %+v is not local", v.Volume)
					}
				}
			}
			if len(bound) == 0 {
				bound = nil
			}
			if !reflect.DeepEqual(bound, tc.bound) || !reflect.DeepEqual(created, tc.created) {
				t.Errorf("volumes bound %v created %v; want %v and %v", bound, created, tc.bound, tc.created)
			}
		})
	}
}

// Schedule without volumes must place a task with a volume mount exactly
// as before only when the volume does not constrain it; with ScheduleVolumes
// the attachment the node needs travels with the placement.
func TestPlacementCarriesAttachment(t *testing.T) {
	v := localVol("db-data", "a")
	v.Spec.Opts = nil
	p := ScheduleVolumes([]api.Node{node("a", 1, 1)}, nil, []api.Task{task("t1", "pg", 1, mounts("db-data", "db-data"))}, []api.Volume{v}, rand.New(rand.NewPCG(1, 2)))
	if len(p.Placements) != 1 {
		t.Fatalf("plan = %+v", p)
	}
	want := []api.VolumeAttachment{{Name: "db-data", Driver: api.LocalDriver, Scope: api.ScopeSingleNode, Access: api.AccessSingleWriter}}
	if !reflect.DeepEqual(p.Placements[0].Volumes, want) {
		t.Fatalf("attachments = %+v, want %+v", p.Placements[0].Volumes, want)
	}
	if len(p.Volumes) != 0 {
		t.Fatalf("a bound volume was re-recorded: %+v", p.Volumes)
	}
}
