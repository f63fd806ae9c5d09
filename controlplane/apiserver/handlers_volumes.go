package apiserver

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/scheduler"
	"github.com/warrenhq/warren/controlplane/store"
)

// volumeDrivers are the drivers a volume may name: the built-in local one
// and every driver some node reports. A driver nobody runs would leave every
// task that mounts the volume pending forever, so it is refused up front.
func volumeDrivers(v *store.View) map[string]api.VolumeDriverInfo {
	out := map[string]api.VolumeDriverInfo{
		api.LocalDriver: {Name: api.LocalDriver, Scope: api.ScopeSingleNode,
			Access: []api.VolumeAccess{api.AccessSingleWriter, api.AccessMultiReader, api.AccessMultiWriter}},
	}
	for _, n := range v.Nodes() {
		for _, d := range n.Status.VolumeDrivers {
			if _, ok := out[d.Name]; !ok {
				out[d.Name] = d
			}
		}
	}
	return out
}

func driverNames(ds map[string]api.VolumeDriverInfo) string {
	names := make([]string, 0, len(ds))
	for n := range ds {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// normalizeVolume checks a volume spec and fills its defaults: driver local,
// scope from the driver, access single-writer (multi-writer when shared),
// the node reference resolved to an ID.
func normalizeVolume(v *store.View, spec api.VolumeSpec) (api.VolumeSpec, error) {
	bad := func(format string, args ...any) error {
		return errorf(http.StatusBadRequest, "volume %q: %s", spec.Name, fmt.Sprintf(format, args...))
	}
	if err := api.ValidVolumeName(spec.Name); err != nil {
		return spec, errorf(http.StatusBadRequest, "%v", err)
	}
	if spec.Driver == "" {
		spec.Driver = api.LocalDriver
	}
	drivers := volumeDrivers(v)
	d, ok := drivers[spec.Driver]
	if !ok {
		return spec, bad("driver %q: unknown; no node reports it (known: %s)", spec.Driver, driverNames(drivers))
	}
	switch spec.Scope {
	case "":
		spec.Scope = d.Scope
	case api.ScopeSingleNode, api.ScopeMultiNode:
		if spec.Scope == api.ScopeMultiNode && d.Scope != api.ScopeMultiNode {
			return spec, bad("scope: driver %s keeps data on one node; multi-node needs a network driver", spec.Driver)
		}
	default:
		return spec, bad("scope: must be single-node or multi-node, not %q", spec.Scope)
	}
	switch spec.Access {
	case "":
		spec.Access = api.AccessSingleWriter
		if spec.Shared {
			spec.Access = api.AccessMultiWriter
		}
	case api.AccessSingleWriter, api.AccessMultiReader, api.AccessMultiWriter:
	default:
		return spec, bad("access: must be single-writer, multi-reader or multi-writer, not %q", spec.Access)
	}
	if len(d.Access) > 0 && !slices.Contains(d.Access, spec.Access) {
		return spec, bad("access %s: driver %s supports only %v", spec.Access, spec.Driver, d.Access)
	}
	if spec.Node != "" || len(spec.Constraints) > 0 {
		if spec.Scope != api.ScopeSingleNode {
			return spec, bad("node and constraints apply to single-node volumes only")
		}
		if spec.Node != "" && len(spec.Constraints) > 0 {
			return spec, bad("give either a node or constraints, not both")
		}
	}
	if spec.Node != "" {
		n, err := findNode(v, spec.Node)
		if err != nil {
			return spec, bad("node: %v", err)
		}
		spec.Node = n.ID
	}
	for i, c := range spec.Constraints {
		if _, err := scheduler.ParseConstraint(c); err != nil {
			return spec, bad("constraints[%d]: %v", i, err)
		}
	}
	if spec.Driver == api.LocalDriver && len(spec.Opts) > 0 {
		return spec, bad("opts: the local driver takes none")
	}
	return spec, nil
}

func (s *Server) createVolume(w http.ResponseWriter, r *http.Request, _ Identity) error {
	var spec api.VolumeSpec
	if err := decodeBody(r, &spec); err != nil {
		return err
	}
	v := s.b.View()
	spec, err := normalizeVolume(v, spec)
	if err != nil {
		return err
	}
	if _, ok := v.Volume(spec.Name); ok {
		return errorf(http.StatusConflict, "volume %q: already exists", spec.Name)
	}
	vol := api.Volume{Name: spec.Name, Spec: spec, Status: api.VolumeStatus{Node: spec.Node}}
	_, err = s.apply(r.Context(), &store.Batch{
		Expect:     []store.Expectation{{Kind: store.KindVolume, ID: spec.Name, Version: 0}},
		PutVolumes: []api.Volume{vol},
	})
	if err != nil {
		return err
	}
	vol, _ = s.b.View().Volume(spec.Name)
	writeJSON(w, http.StatusCreated, vol)
	return nil
}

func (s *Server) listVolumes(w http.ResponseWriter, r *http.Request, _ Identity) error {
	v := s.b.View()
	writeIndex(w, v.Index())
	writeJSON(w, http.StatusOK, nonNil(v.Volumes()))
	return nil
}

func (s *Server) inspectVolume(w http.ResponseWriter, r *http.Request, _ Identity) error {
	v := s.b.View()
	vol, ok := v.Volume(r.PathValue("name"))
	if !ok {
		return errorf(http.StatusNotFound, "volume %q not found", r.PathValue("name"))
	}
	writeIndex(w, v.Index())
	writeJSON(w, http.StatusOK, vol)
	return nil
}

// removeVolume forgets a volume. One that a service still mounts is refused
// with the services' names unless ?force=true: without force an operator
// cannot lose a database's volume by a typo.
func (s *Server) removeVolume(w http.ResponseWriter, r *http.Request, _ Identity) error {
	name := r.PathValue("name")
	v := s.b.View()
	vol, ok := v.Volume(name)
	if !ok {
		return errorf(http.StatusNotFound, "volume %q not found", name)
	}
	if users := v.VolumeUsers(name); len(users) > 0 && r.URL.Query().Get("force") != "true" {
		names := make([]string, len(users))
		for i, u := range users {
			names[i] = u.Spec.Name
		}
		sort.Strings(names)
		return errorf(http.StatusConflict, "volume %q is in use by services %s; remove them first, or use --force", name, strings.Join(names, ", "))
	}
	idx, err := s.apply(r.Context(), &store.Batch{
		Expect:        []store.Expectation{{Kind: store.KindVolume, ID: name, Version: vol.Meta.Version}},
		DeleteVolumes: []string{name},
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, client.WriteResult{Index: idx, ID: name})
	return nil
}

// checkVolumeMounts refuses a service whose volume mounts cannot work: a bad
// volume name, or more than one task on a single-node volume that is not
// shared. A volume that does not exist yet will be created local and not
// shared at first use, so the same rule applies to it.
func checkVolumeMounts(v *store.View, spec api.ServiceSpec) error {
	for i, m := range spec.Task.Container.Mounts {
		if m.Type != api.MountVolume {
			continue
		}
		field := fmt.Sprintf("service %q: task.container.mounts[%d].source", spec.Name, i)
		if err := api.ValidVolumeName(m.Source); err != nil {
			return errorf(http.StatusBadRequest, "%s: %v", field, err)
		}
		vol, ok := v.Volume(m.Source)
		if !ok {
			vol = api.Volume{Name: m.Source, Spec: api.VolumeSpec{Name: m.Source, Driver: api.LocalDriver, Scope: api.ScopeSingleNode}}
		}
		many := spec.Mode == api.ModeGlobal || spec.Replicas > 1
		if many && vol.SingleNode() && !vol.Spec.Shared {
			return errorf(http.StatusBadRequest, "%s: volume %s is single-node and not shared, so at most one task may mount it (replicas %d, mode %s); create it with `warren volume create --shared %s`", field, m.Source, spec.Replicas, spec.Mode, m.Source)
		}
	}
	return nil
}
