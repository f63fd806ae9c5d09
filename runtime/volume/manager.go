package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/api"
)

// PluginPrefix starts the file name of every plugin in the plugin dir:
// driver "sshfs" is the executable warren-volume-sshfs.
const PluginPrefix = "warren-volume-"

// Options configure a Manager.
type Options struct {
	// Dir holds every volume of the node at Dir/<name> (the local driver's
	// data, or a plugin's mount point) and driver state under Dir/.state.
	Dir string
	// PluginDir holds the plugin executables (warren-volume-<driver>).
	PluginDir string
	NodeID    string
	Timeouts  Timeouts
	Logger    *zap.Logger
	// Now is the clock for the driver list cache.
	Now func() time.Time
}

// Manager is the node's volume side: it finds drivers, mounts a task's
// volumes before its container runs and unmounts them after the last task
// using them is gone. It implements runtime.Volumes.
type Manager struct {
	o   Options
	log *zap.Logger

	mu     sync.Mutex
	locks  map[string]*sync.Mutex     // per volume: one operation at a time
	users  map[string]map[string]bool // volume → tasks on this node using it
	caps   []api.VolumeDriverInfo
	capsAt time.Time
}

// NewManager returns a Manager; it creates nothing until a task needs it.
func NewManager(o Options) *Manager {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Manager{o: o, log: o.Logger, locks: map[string]*sync.Mutex{}, users: map[string]map[string]bool{}}
}

// Path is where a volume is on this node.
func (m *Manager) Path(name string) string { return filepath.Join(m.o.Dir, name) }

// stateDir is a driver's per-volume state directory. Volume names start
// with a letter or digit, so ".state" cannot be a volume.
func (m *Manager) stateDir(name string) string { return filepath.Join(m.o.Dir, ".state", name) }

// Driver returns the named driver: local, or the plugin executable.
func (m *Manager) Driver(name string) (Driver, error) {
	if name == "" || name == api.LocalDriver {
		return Local{Dir: m.o.Dir}, nil
	}
	if strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, ".") {
		return nil, fmt.Errorf("volume driver %q: %w", name, ErrUnknownDriver)
	}
	p := filepath.Join(m.o.PluginDir, PluginPrefix+name)
	fi, err := os.Stat(p)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("volume driver %q: %w: no executable %s on this node", name, ErrUnknownDriver, p)
	}
	return Plugin{Name: name, Path: p, Timeouts: m.o.Timeouts}, nil
}

// Drivers lists the plugins this node has with the capabilities they
// declare, for the node's registration. A plugin that does not answer is
// left out (and logged), so the scheduler never sends it volumes. The list
// is kept for a minute: registration runs on every heartbeat.
func (m *Manager) Drivers(ctx context.Context) []api.VolumeDriverInfo {
	m.mu.Lock()
	if !m.capsAt.IsZero() && m.o.Now().Sub(m.capsAt) < time.Minute {
		out := m.caps
		m.mu.Unlock()
		return out
	}
	m.mu.Unlock()
	var out []api.VolumeDriverInfo
	ents, _ := os.ReadDir(m.o.PluginDir)
	for _, e := range ents {
		name, ok := strings.CutPrefix(e.Name(), PluginPrefix)
		if !ok || name == "" {
			continue
		}
		d, err := m.Driver(name)
		if err != nil {
			continue
		}
		c, err := d.Capabilities(ctx)
		if err != nil {
			m.log.Warn("volume plugin left out", zap.String("driver", name), zap.Error(err))
			continue
		}
		out = append(out, api.VolumeDriverInfo{Name: name, Scope: c.Scope, Access: c.Access})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	m.mu.Lock()
	m.caps, m.capsAt = out, m.o.Now()
	m.mu.Unlock()
	return out
}

func (m *Manager) lock(name string) func() {
	m.mu.Lock()
	l := m.locks[name]
	if l == nil {
		l = &sync.Mutex{}
		m.locks[name] = l
	}
	m.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// attachments are the task's volumes as the leader resolved them; a volume
// mount without one (a task placed before volumes were recorded) is local.
func attachments(task *api.Task) []api.VolumeAttachment {
	byName := map[string]api.VolumeAttachment{}
	for _, a := range task.Volumes {
		byName[a.Name] = a
	}
	var out []api.VolumeAttachment
	for _, name := range api.VolumeMounts(task.Spec) {
		a, ok := byName[name]
		if !ok {
			a = api.VolumeAttachment{Name: name, Driver: api.LocalDriver, Scope: api.ScopeSingleNode}
		}
		out = append(out, a)
	}
	return out
}

// Mount implements runtime.Volumes.
func (m *Manager) Mount(ctx context.Context, task *api.Task) error {
	for _, a := range attachments(task) {
		if err := m.mountOne(ctx, task, a); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) mountOne(ctx context.Context, task *api.Task, a api.VolumeAttachment) error {
	if err := api.ValidVolumeName(a.Name); err != nil {
		return err
	}
	unlock := m.lock(a.Name)
	defer unlock()
	d, err := m.Driver(a.Driver)
	if err != nil {
		return fmt.Errorf("volume %s: %w", a.Name, err)
	}
	target := m.Path(a.Name)
	req := Request{Name: a.Name, Opts: a.Opts, Access: a.Access, Node: m.o.NodeID, Target: target, StateDir: m.stateDir(a.Name)}
	if err := os.MkdirAll(req.StateDir, 0o700); err != nil {
		return fmt.Errorf("volume %s: state dir: %w", a.Name, err)
	}
	if err := d.Create(ctx, req); err != nil {
		return fmt.Errorf("volume %s: create: %w", a.Name, err)
	}
	if err := d.Attach(ctx, req); err != nil {
		return fmt.Errorf("volume %s: attach: %w", a.Name, err)
	}
	if _, local := d.(Local); !local {
		if err := m.mountPlugin(ctx, d, req); err != nil {
			return fmt.Errorf("volume %s: %w", a.Name, err)
		}
	} else if err := d.Mount(ctx, req); err != nil {
		return fmt.Errorf("volume %s: mount: %w", a.Name, err)
	}
	m.mu.Lock()
	if m.users[a.Name] == nil {
		m.users[a.Name] = map[string]bool{}
	}
	m.users[a.Name][task.ID] = true
	m.mu.Unlock()
	return nil
}

// mountPlugin mounts a plugin volume at its node path unless a live mount
// is there. A mount whose server went away (ENOTCONN on stat) is detached
// and made again; a plugin that says it mounted while nothing is mounted is
// an error, because the task would otherwise write to the node's own disk.
func (m *Manager) mountPlugin(ctx context.Context, d Driver, req Request) error {
	target := req.Target
	mounted, err := isMountpoint(target)
	switch {
	case err == nil && mounted:
		return nil
	case err != nil && !errors.Is(err, os.ErrNotExist):
		m.log.Warn("volume mount is broken; remounting", zap.String("volume", req.Name), zap.Error(err))
		if uerr := detach(target); uerr != nil {
			return fmt.Errorf("detach broken mount %s: %w", target, uerr)
		}
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("mount point: %w", err)
	}
	if err := d.Mount(ctx, req); err != nil {
		m.cleanup(target)
		return fmt.Errorf("mount: %w", err)
	}
	if ok, err := isMountpoint(target); err != nil || !ok {
		m.cleanup(target)
		return fmt.Errorf("mount: driver reported success but nothing is mounted at %s (%v)", target, err)
	}
	return nil
}

// cleanup leaves no mount behind a failed or abandoned mount.
func (m *Manager) cleanup(target string) {
	if ok, err := isMountpoint(target); ok || (err != nil && !errors.Is(err, os.ErrNotExist)) {
		if err := detach(target); err != nil {
			m.log.Warn("detach volume mount", zap.String("target", target), zap.Error(err))
		}
	}
}

// Release implements runtime.Volumes.
func (m *Manager) Release(ctx context.Context, task *api.Task) error {
	var errs []error
	for _, a := range attachments(task) {
		if err := m.releaseOne(ctx, task, a); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) releaseOne(ctx context.Context, task *api.Task, a api.VolumeAttachment) error {
	unlock := m.lock(a.Name)
	defer unlock()
	m.mu.Lock()
	delete(m.users[a.Name], task.ID)
	inUse := len(m.users[a.Name]) > 0
	m.mu.Unlock()
	if inUse {
		return nil
	}
	d, err := m.Driver(a.Driver)
	if err != nil {
		return fmt.Errorf("volume %s: %w", a.Name, err)
	}
	if _, local := d.(Local); local {
		return nil
	}
	target := m.Path(a.Name)
	req := Request{Name: a.Name, Opts: a.Opts, Access: a.Access, Node: m.o.NodeID, Target: target, StateDir: m.stateDir(a.Name)}
	err = d.Unmount(ctx, req)
	// Whatever the plugin said, no mount stays behind: a dead server must
	// not leave a mount point that hangs the next task.
	m.cleanup(target)
	if err != nil {
		return fmt.Errorf("volume %s: unmount: %w", a.Name, err)
	}
	return nil
}

// Users returns the tasks on this node using a volume (for tests and logs).
func (m *Manager) Users(name string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for id := range m.users[name] {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}
