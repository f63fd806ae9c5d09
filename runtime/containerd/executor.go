package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images/archive"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/runtime"
	"github.com/warrenhq/warren/runtime/ociimage"
	"github.com/warrenhq/warren/runtime/registry"
)

// Defaults.
const (
	DefaultAddress      = "/run/containerd/containerd.sock"
	DefaultNamespace    = "warren"
	DefaultCgroupParent = "warren"
	DefaultSnapshotter  = "overlayfs"
	DefaultRuntime      = "io.containerd.runc.v2"
)

// Options configure an Executor.
type Options struct {
	Address   string // containerd socket
	Namespace string // containerd namespace of this node
	// CgroupParent holds this node's tasks in every hierarchy.
	CgroupParent string
	// NodeID, when set, limits List to containers labelled with it.
	NodeID string
	// Network attaches each task's network namespace; nil leaves it empty
	// (loopback only).
	Network runtime.Network
	// ImageFetcher returns an image archive (from a manager) when an image
	// is not present locally; tried before a registry pull.
	ImageFetcher func(ctx context.Context, ref string) (io.ReadCloser, error)
	// LoggerBinary, when set, is run by the shim as the task's log driver
	// (see LoggerMain): stdout and stderr are kept apart and timestamped,
	// and it rotates the file itself. Empty: the shim appends raw output to
	// the log file and the Worker rotates it.
	LoggerBinary string
	// DisablePull keeps EnsureImage from contacting registries (air-gapped
	// sites, and tests, which must not send traffic off the machine).
	DisablePull bool
	// PullAuth returns, at each pull, the registry settings and credentials
	// for a task's image (the agent's, agent.Agent.PullAuth); nil: the
	// system CA pool, no mirrors, no credentials.
	PullAuth func(taskID string) *api.PullAuth
	// Platform (os/arch[/variant]) replaces the host's when choosing from
	// an image index; empty: the host's. Only tests set it, to play a node
	// of another architecture (the demo binary runs either way).
	Platform    string
	Snapshotter string
	Runtime     string
	VolumeDir   string
	// Volumes mounts each task's volumes (at VolumeDir/<name>) before its
	// container runs; nil: volumes are plain directories there.
	Volumes runtime.Volumes
	// ResolvConf is mounted at /etc/resolv.conf in every task (the node's DNS).
	ResolvConf string
	// CgroupV2Root is the cgroup2 mount; detected when empty
	// (/sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones).
	CgroupV2Root string
	Logger       *zap.Logger
}

// Executor is a runtime.Executor on containerd.
type Executor struct {
	o      Options
	client *client.Client
	log    *zap.Logger
	cg     cgroupLayout
	// refusals keep a task that restarts quickly from asking a registry
	// that refused its pull (401, 404) again and again.
	refusals *registry.Refusals
	// images has the tasks of one image that start together fetch it once.
	images keyedMutex
	// pulls are the tasks shown each pull's progress.
	pulls pullFollowers
}

// New connects to containerd.
func New(o Options) (*Executor, error) {
	if o.Address == "" {
		o.Address = DefaultAddress
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.CgroupParent == "" {
		o.CgroupParent = DefaultCgroupParent
	}
	if o.Snapshotter == "" {
		o.Snapshotter = DefaultSnapshotter
	}
	if o.Runtime == "" {
		o.Runtime = DefaultRuntime
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	c, err := client.New(o.Address, client.WithDefaultNamespace(o.Namespace), client.WithTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect containerd %s: %w", o.Address, err)
	}
	return &Executor{o: o, client: c, log: o.Logger, cg: detectCgroups(o.CgroupV2Root),
		refusals: &registry.Refusals{Min: 5 * time.Second, Max: 5 * time.Minute}}, nil
}

// Close closes the connection to containerd; containers keep running.
func (e *Executor) Close() error { return e.client.Close() }

// Client is the underlying containerd client (tests read specs back with it).
func (e *Executor) Client() *client.Client { return e.client }

// TaggedLogs reports whether task logs are written by the task logger
// (timestamped, one stream tag per line) rather than raw.
func (e *Executor) TaggedLogs() bool { return e.o.LoggerBinary != "" }

// Namespace is the containerd namespace of this node.
func (e *Executor) Namespace() string { return e.o.Namespace }

func (e *Executor) ns(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, e.o.Namespace)
}

// CgroupV2Path is the node's parent cgroup in the v2 hierarchy; each task's
// processes are in <CgroupV2Path>/<taskID>.
func (e *Executor) CgroupV2Path() string {
	return filepath.Join(e.cg.v2Root, runtime.CgroupPath(e.o.CgroupParent, ""))
}

// TaskCgroupV2Path is a task's cgroup in the v2 hierarchy.
func (e *Executor) TaskCgroupV2Path(taskID string) string {
	return filepath.Join(e.cg.v2Root, runtime.CgroupPath(e.o.CgroupParent, taskID))
}

// SpecOptions are the node settings ApplySpec needs.
func (e *Executor) SpecOptions() runtime.SpecOptions {
	return runtime.SpecOptions{CgroupParent: e.o.CgroupParent, VolumeDir: e.o.VolumeDir, ResolvConf: e.o.ResolvConf}
}

// Controller implements runtime.Executor.
func (e *Executor) Controller(t *api.Task, o runtime.ControllerOptions) (runtime.Controller, error) {
	if t.ID == "" || t.Spec.Container.Image == "" {
		return nil, fmt.Errorf("controller: task needs an ID and an image")
	}
	return newController(e, *t, o), nil
}

// List implements runtime.Executor.
func (e *Executor) List(ctx context.Context) ([]runtime.Owned, error) {
	ctx = e.ns(ctx)
	filter := fmt.Sprintf("labels.%q", runtime.LabelTaskID)
	if e.o.NodeID != "" {
		filter = fmt.Sprintf("labels.%q==%q", runtime.LabelNodeID, e.o.NodeID)
	}
	cs, err := e.client.Containers(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var out []runtime.Owned
	for _, c := range cs {
		labels, err := c.Labels(ctx)
		if err != nil {
			continue
		}
		o := runtime.Owned{ContainerID: c.ID(), TaskID: labels[runtime.LabelTaskID]}
		if t, err := c.Task(ctx, nil); err == nil {
			if st, err := t.Status(ctx); err == nil && st.Status == client.Running {
				o.Running = true
			}
		}
		out = append(out, o)
	}
	return out, nil
}

// RemoveContainer implements runtime.Executor: kill, detach, delete.
func (e *Executor) RemoveContainer(ctx context.Context, id string) error {
	ctx = e.ns(ctx)
	c, err := e.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load container %s: %w", id, err)
	}
	if t, err := c.Task(ctx, nil); err == nil {
		if _, err := t.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete task %s: %w", id, err)
		}
	}
	if e.o.Network != nil {
		if err := e.o.Network.Detach(ctx, id, ""); err != nil {
			e.log.Warn("network detach", zap.String("container", id), zap.Error(err))
		}
	}
	if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	e.cg.remove(runtime.CgroupPath(e.o.CgroupParent, id))
	return nil
}

// ImportArchive loads a docker-save or OCI archive and unpacks its images;
// it returns their names. Of a multi-platform archive only this node's
// platform (Options.Platform when set) is imported and unpacked.
func (e *Executor) ImportArchive(ctx context.Context, r io.Reader) ([]string, error) {
	ctx = e.ns(ctx)
	imgs, err := e.client.Import(ctx, r, client.WithImportPlatform(e.platform()))
	if err != nil {
		return nil, fmt.Errorf("import image archive: %w", err)
	}
	var names []string
	for _, im := range imgs {
		img := client.NewImageWithPlatform(e.client, im, e.platform())
		if err := img.Unpack(ctx, e.o.Snapshotter); err != nil {
			return names, fmt.Errorf("unpack %s: %w", im.Name, err)
		}
		names = append(names, im.Name)
	}
	return names, nil
}

// ExportArchive writes an image as an OCI archive (with a docker manifest).
func (e *Executor) ExportArchive(ctx context.Context, ref string, w io.Writer) error {
	ctx = e.ns(ctx)
	name := ociimage.NormalizeRef(ref)
	if err := e.client.Export(ctx, w, archive.WithImage(e.client.ImageService(), name), archive.WithPlatform(platforms.DefaultStrict())); err != nil {
		return fmt.Errorf("export %s: %w", name, err)
	}
	return nil
}

// ImageInfo describes a local image.
type ImageInfo struct {
	Name   string
	Digest string
	Size   int64
}

// ListImages lists the images of this node's namespace.
func (e *Executor) ListImages(ctx context.Context) ([]ImageInfo, error) {
	ctx = e.ns(ctx)
	imgs, err := e.client.ListImages(ctx)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	var out []ImageInfo
	for _, im := range imgs {
		size, _ := im.Size(ctx)
		out = append(out, ImageInfo{Name: im.Name(), Digest: im.Target().Digest.String(), Size: size})
	}
	return out, nil
}

// RemoveImage deletes an image by reference.
func (e *Executor) RemoveImage(ctx context.Context, ref string) error {
	ctx = e.ns(ctx)
	if err := e.client.ImageService().Delete(ctx, ociimage.NormalizeRef(ref)); err != nil {
		if errdefs.IsNotFound(err) {
			return fmt.Errorf("remove image %s: %w", ref, runtime.ErrNotFound)
		}
		return fmt.Errorf("remove image %s: %w", ref, err)
	}
	return nil
}

// EnsureImage returns the image, getting it if needed: local store, then
// the ImageFetcher (a manager), then a registry pull.
func (e *Executor) EnsureImage(ctx context.Context, ref string) (client.Image, error) {
	return e.ensureImage(ctx, ref, "", nil, nil)
}

// ensureImage is EnsureImage for an image that may be pinned to a digest
// (it is then looked up and pulled as repository@digest, whatever the tag
// points at now), pulled with the task's registry settings and credentials.
// progress, when set, is told how far a registry pull of it is, whichever
// task's pull it is.
func (e *Executor) ensureImage(ctx context.Context, ref, digest string, pull *api.PullAuth, progress func(api.PullProgress)) (client.Image, error) {
	ctx = e.ns(ctx)
	name := ociimage.NormalizeRef(registry.PinnedRef(ref, digest))
	defer e.pulls.follow(name, ref, progress)()
	unlock, err := e.images.lock(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", name, err)
	}
	defer unlock()
	img, err := e.client.GetImage(ctx, name)
	if err != nil && !errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("get image %s: %w", name, err)
	}
	if err == nil {
		img = client.NewImageWithPlatform(e.client, img.Metadata(), e.platform())
	}
	if err != nil && digest != "" {
		// A pinned image loaded from an archive is known by its tag.
		if byTag, terr := e.client.GetImage(ctx, ociimage.NormalizeRef(ref)); terr == nil && byTag.Target().Digest.String() == digest {
			img, err = client.NewImageWithPlatform(e.client, byTag.Metadata(), e.platform()), nil
		}
	}
	if err != nil && e.o.ImageFetcher != nil {
		rc, ferr := e.o.ImageFetcher(ctx, ref)
		if ferr == nil {
			_, ierr := e.ImportArchive(ctx, rc)
			rc.Close()
			if ierr != nil {
				return nil, ierr
			}
			img, err = e.client.GetImage(ctx, ociimage.NormalizeRef(ref))
			if err == nil && digest != "" && img.Target().Digest.String() != digest {
				// The archive holds another image under the tag: the
				// pinned one comes from the registry.
				img, err = nil, errdefs.ErrNotFound
			}
			if err == nil {
				img = client.NewImageWithPlatform(e.client, img.Metadata(), e.platform())
			}
		} else if errors.Is(ferr, runtime.ErrNotFound) {
			// The managers are asked for every image, registry references
			// too: an image loaded with `warren image load` may carry any
			// name (ghcr.io/me/api:1.4 saved for an air-gapped site), so
			// its name cannot tell a loaded image from a registry one.
			// Not loaded is the usual answer, not news.
			e.log.Debug("image not loaded into the cluster; pulling", zap.String("image", ref))
		} else {
			e.log.Info("image fetcher", zap.String("image", ref), zap.Error(ferr))
		}
	}
	if err != nil && e.o.DisablePull {
		return nil, fmt.Errorf("image %s: not local, not fetched, and pulls are disabled: %w", name, runtime.ErrNotFound)
	}
	if err != nil {
		var cfg api.RegistryConfig
		var creds map[string]api.RegistryCredential
		if pull != nil {
			cfg, creds = pull.Registry, pull.Credentials
		}
		res, rerr := registry.NewResolver(cfg, creds)
		if rerr != nil {
			return nil, fmt.Errorf("image %s: %w", name, rerr)
		}
		key := registry.RefusalKey(name, creds)
		if err := e.refusals.Check(key, time.Now()); err != nil {
			return nil, fmt.Errorf("not local, not fetched, pull: %w", err)
		}
		watch := &pullWatch{}
		stop := e.samplePull(ctx, name, watch)
		img, err = e.client.Pull(ctx, name, client.WithPullUnpack, client.WithPullSnapshotter(e.o.Snapshotter),
			client.WithResolver(watch.resolver(res)), client.WithPlatformMatcher(e.platform()), client.WithImageHandler(watch.handler()))
		stop()
		if err != nil {
			err = registry.Explain(name, err)
		}
		e.refusals.Record(key, err, time.Now())
		if err != nil {
			return nil, fmt.Errorf("not local, not fetched, pull: %w", err)
		}
	}
	ok, err := img.IsUnpacked(ctx, e.o.Snapshotter)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", name, err)
	}
	if !ok {
		if err := img.Unpack(ctx, e.o.Snapshotter); err != nil {
			return nil, fmt.Errorf("unpack %s: %w", name, err)
		}
	}
	return img, nil
}

func (e *Executor) pullAuth(taskID string) *api.PullAuth {
	if e.o.PullAuth == nil {
		return nil
	}
	return e.o.PullAuth(taskID)
}

// platform is what this node pulls and unpacks: its own, or the one it
// was told to report (Options.Platform, for tests).
func (e *Executor) platform() platforms.MatchComparer {
	if e.o.Platform != "" {
		if p, err := platforms.Parse(e.o.Platform); err == nil {
			return platforms.Only(p)
		}
	}
	return platforms.Default()
}

func parseAddr(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a
}

var errNoTask = errors.New("no task process")
