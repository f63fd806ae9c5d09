package runtime

import (
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/warrenhq/warren/controlplane/api"
)

// ImageConfig is the runtime configuration carried by an image.
type ImageConfig = ocispec.ImageConfig

// Labels every container Warren creates carries, so a restarted agent can
// find and adopt them.
const (
	LabelTaskID      = "warren.task.id"
	LabelServiceID   = "warren.service.id"
	LabelServiceName = "warren.service.name"
	LabelNodeID      = "warren.node.id"
	LabelSlot        = "warren.task.slot"
	LabelVersion     = "warren.task.version"
	LabelStopSignal  = "warren.stop.signal"
	LabelStopGrace   = "warren.stop.grace"
	// LabelAddr records the address the network attached, for adoption.
	LabelAddr = "warren.task.addr"
	// LabelRestarts counts processes started in the container after the
	// first, so a new Worker adopting it keeps the count.
	LabelRestarts = "warren.task.restarts"
)

// DefaultPath is the PATH a container gets when neither image nor task set one.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// cpuPeriod is the CFS period limits are expressed in (100 ms, as docker).
const cpuPeriod = 100000

// SpecOptions are node-level settings that shape every task's spec.
type SpecOptions struct {
	// CgroupParent is the cgroup (relative to each hierarchy's root) that
	// holds this node's tasks, e.g. "warren" or "warren-node2".
	CgroupParent string
	// VolumeDir holds named volumes (mount type volume): <VolumeDir>/<source>.
	VolumeDir string
	// ResolvConf, when set, is bind-mounted read-only at /etc/resolv.conf
	// so tasks resolve service names through the node's DNS server.
	ResolvConf string
}

// CgroupPath is the cgroupsPath of a task: /<parent>/<taskID>.
func CgroupPath(parent, taskID string) string {
	return path.Join("/", parent, taskID)
}

// ProcessArgs applies docker's entrypoint/cmd semantics: Command replaces the
// image entrypoint and then also drops the image cmd; Args replaces the
// image cmd.
func ProcessArgs(c api.ContainerSpec, img ImageConfig) ([]string, error) {
	var entry, cmd []string
	if len(c.Command) > 0 {
		entry, cmd = c.Command, c.Args
	} else {
		entry = img.Entrypoint
		cmd = img.Cmd
		if len(c.Args) > 0 {
			cmd = c.Args
		}
	}
	args := append(append([]string{}, entry...), cmd...)
	if len(args) == 0 {
		return nil, fmt.Errorf("no command: neither the task nor the image sets an entrypoint or cmd")
	}
	return args, nil
}

// MergeEnv overlays task variables on the image's, by key, keeping the
// image's order, and adds PATH when neither sets it.
func MergeEnv(image, task []string) []string {
	var out []string
	idx := map[string]int{}
	add := func(kv string) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			return
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	for _, kv := range image {
		add(kv)
	}
	for _, kv := range task {
		add(kv)
	}
	if _, ok := idx["PATH"]; !ok {
		out = append([]string{DefaultPath}, out...)
	}
	return out
}

// ParseUser parses a numeric "uid" or "uid:gid". ok is false for names,
// which need the image's /etc/passwd (the containerd executor resolves them).
func ParseUser(u string) (uid, gid uint32, ok bool) {
	if u == "" {
		return 0, 0, true
	}
	us, gs, hasGID := strings.Cut(u, ":")
	x, err := strconv.ParseUint(us, 10, 32)
	if err != nil {
		return 0, 0, false
	}
	y := x
	if hasGID {
		if y, err = strconv.ParseUint(gs, 10, 32); err != nil {
			return 0, 0, false
		}
	}
	return uint32(x), uint32(y), true
}

// TaskUser is the user a task runs as: the task's, else the image's.
func TaskUser(c api.ContainerSpec, img ImageConfig) string {
	if c.User != "" {
		return c.User
	}
	return img.User
}

// Hostname is the container's hostname: the spec's, else the first 12
// characters of the task ID, the short ID the CLI shows (Swarm uses the
// container's short ID the same way).
func Hostname(task *api.Task) string {
	if h := task.Spec.Container.Hostname; h != "" {
		return h
	}
	h := task.ID
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}

// LabelsFor are the containerd labels of a task's container: the user's
// labels, then Warren's own (which the user cannot override).
func LabelsFor(task *api.Task) map[string]string {
	l := map[string]string{}
	for k, v := range task.Spec.Container.Labels {
		l[k] = v
	}
	l[LabelTaskID] = task.ID
	l[LabelServiceID] = task.ServiceID
	l[LabelServiceName] = task.ServiceName
	l[LabelNodeID] = task.NodeID
	l[LabelSlot] = strconv.FormatUint(task.Slot, 10)
	l[LabelVersion] = task.Version
	if s := task.Spec.Container.StopSignal; s != "" {
		l[LabelStopSignal] = s
	}
	if g := task.Spec.Container.StopGrace; g != 0 {
		l[LabelStopGrace] = g.D().String()
	}
	return l
}

// Mounts turns the task's mounts into OCI mounts.
func Mounts(ms []api.Mount, volumeDir string) ([]specs.Mount, error) {
	var out []specs.Mount
	for _, m := range ms {
		if m.Target == "" || !path.IsAbs(m.Target) {
			return nil, fmt.Errorf("mount target %q: must be an absolute path", m.Target)
		}
		rw := "rw"
		if m.ReadOnly {
			rw = "ro"
		}
		switch m.Type {
		case api.MountBind, api.MountVolume:
			src := m.Source
			if m.Type == api.MountVolume {
				if volumeDir == "" || src == "" || strings.ContainsAny(src, "/") {
					return nil, fmt.Errorf("volume mount %q: needs a plain volume name and a node volume dir", src)
				}
				src = filepath.Join(volumeDir, src)
			}
			if !path.IsAbs(src) {
				return nil, fmt.Errorf("bind mount source %q: must be an absolute path", src)
			}
			out = append(out, specs.Mount{Destination: m.Target, Type: "bind", Source: src, Options: []string{"rbind", "rprivate", rw}})
		case api.MountTmpfs:
			opts := []string{"nosuid", "nodev", "mode=1777", rw}
			if m.TmpfsSize > 0 {
				opts = append(opts, "size="+strconv.FormatInt(m.TmpfsSize, 10))
			}
			out = append(out, specs.Mount{Destination: m.Target, Type: "tmpfs", Source: "tmpfs", Options: opts})
		default:
			return nil, fmt.Errorf("mount %s: unknown type %q", m.Target, m.Type)
		}
	}
	return out, nil
}

// ApplySpec writes everything a task asks for into an OCI spec that already
// holds the runtime's defaults (namespaces, default mounts, capabilities).
// Names in User are left for the caller to resolve (see ParseUser).
func ApplySpec(s *specs.Spec, task *api.Task, img ImageConfig, o SpecOptions) error {
	c := task.Spec.Container
	args, err := ProcessArgs(c, img)
	if err != nil {
		return err
	}
	if s.Process == nil {
		s.Process = &specs.Process{}
	}
	if s.Root == nil {
		s.Root = &specs.Root{Path: "rootfs"}
	}
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	s.Process.Args = args
	s.Process.Env = MergeEnv(img.Env, c.Env)
	s.Process.Cwd = "/"
	if c.Dir != "" {
		s.Process.Cwd = c.Dir
	} else if img.WorkingDir != "" {
		s.Process.Cwd = img.WorkingDir
	}
	if uid, gid, ok := ParseUser(TaskUser(c, img)); ok {
		s.Process.User = specs.User{UID: uid, GID: gid}
	}
	s.Hostname = Hostname(task)
	s.Root.Readonly = c.ReadOnly

	mounts, err := Mounts(c.Mounts, o.VolumeDir)
	if err != nil {
		return err
	}
	if o.ResolvConf != "" {
		// First, so a task's own mount at /etc/resolv.conf still wins.
		mounts = append([]specs.Mount{{Destination: "/etc/resolv.conf", Type: "bind", Source: o.ResolvConf, Options: []string{"rbind", "ro"}}}, mounts...)
	}
	// A task mount replaces a default mount at the same place (as docker).
	targets := map[string]bool{}
	for _, m := range mounts {
		targets[path.Clean(m.Destination)] = true
	}
	kept := s.Mounts[:0]
	for _, m := range s.Mounts {
		if !targets[path.Clean(m.Destination)] {
			kept = append(kept, m)
		}
	}
	s.Mounts = append(kept, mounts...)

	if s.Linux.Resources == nil {
		s.Linux.Resources = &specs.LinuxResources{}
	}
	r := s.Linux.Resources
	lim := task.Spec.Resources.Limits
	if lim.MemoryBytes > 0 {
		m := lim.MemoryBytes
		if r.Memory == nil {
			r.Memory = &specs.LinuxMemory{}
		}
		r.Memory.Limit = &m
	}
	if lim.NanoCPUs > 0 {
		q := lim.NanoCPUs * cpuPeriod / 1e9
		p := uint64(cpuPeriod)
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		r.CPU.Quota, r.CPU.Period = &q, &p
	}
	if lim.Pids > 0 {
		pl := lim.Pids
		r.Pids = &specs.LinuxPids{Limit: &pl}
	}
	s.Linux.CgroupsPath = CgroupPath(o.CgroupParent, task.ID)

	// A fresh network namespace (no path): the Network attaches it after
	// the process exists.
	hasNet := false
	for i, ns := range s.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			s.Linux.Namespaces[i].Path = ""
			hasNet = true
		}
	}
	if !hasNet {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[LabelTaskID] = task.ID
	return nil
}

// SpecFor is ApplySpec on a minimal base spec; tests and tools use it to see
// what a task turns into without a runtime.
func SpecFor(task *api.Task, img ImageConfig, o SpecOptions) (*specs.Spec, error) {
	s := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{},
		Root:    &specs.Root{Path: "rootfs"},
		Mounts:  []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}, {Destination: "/dev/shm", Type: "tmpfs", Source: "shm"}},
		Linux:   &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}}},
	}
	if err := ApplySpec(s, task, img, o); err != nil {
		return nil, err
	}
	return s, nil
}
