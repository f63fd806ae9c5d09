package agent

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/secretbox"
)

// SecretFS keeps the files of secrets and configs for the node's tasks on
// a tmpfs, never on disk. runtime.SecretFS implements it.
type SecretFS interface {
	// Set makes the tmpfs hold exactly files for each task listed, rewriting
	// changed files in place; the files of tasks in keep are left as they
	// are; every other task's files are removed.
	Set(files map[string][]SecretFile, keep []string) error
	// TaskDir is the directory of a task's files (bind mount sources).
	TaskDir(taskID string) string
	// Has reports whether a task's files are present (they outlive an agent
	// restart, not a reboot).
	Has(taskID string) bool
}

// SecretFile is one file in a task's directory on the tmpfs.
type SecretFile struct {
	// Path is relative to the task's directory.
	Path     string
	Data     []byte
	UID, GID uint32
	Mode     uint32
	// InPlace files are bind-mounted one by one, so a rename would not
	// reach the container: they are rewritten in the same inode instead.
	InPlace bool
}

// SecretsDir is where secrets are mounted in a task by default; the whole
// directory is one bind mount, so an atomic rename inside it is seen by the
// task.
const SecretsDir = "/run/secrets"

// secretLayout decides, for one task, the files its tmpfs directory holds
// and the mounts that show them in the container: targets under
// /run/secrets share one directory mount (rotation by rename is atomic);
// any other target is a file bind mount, because mounting its directory
// would hide the image's other files there. missing names the values the
// task needs and that the agent does not have.
func secretLayout(t api.Task, taskDir string, values map[string][]byte) (files []SecretFile, mounts []api.Mount, missing []string) {
	c := t.Spec.Container
	dirMount := false
	i := 0
	add := func(kind api.SecretKind, r api.SecretRef) {
		data, ok := values[valueKey(kind, r.ID)]
		if !ok {
			missing = append(missing, fmt.Sprintf("%s %q", kind, r.Name))
			return
		}
		f := SecretFile{Data: data, UID: r.UID, GID: r.GID, Mode: r.Mode}
		if rel, ok := strings.CutPrefix(r.Target, SecretsDir+"/"); ok {
			f.Path = path.Join("run-secrets", rel)
			dirMount = true
		} else {
			i++
			f.Path = path.Join("files", strconv.Itoa(i), path.Base(r.Target))
			f.InPlace = true
			mounts = append(mounts, api.Mount{Type: api.MountBind, Source: path.Join(taskDir, f.Path), Target: r.Target, ReadOnly: true})
		}
		files = append(files, f)
	}
	for _, r := range c.Secrets {
		add(api.KindSecret, r)
	}
	for _, r := range c.Configs {
		add(api.KindConfig, r)
	}
	if dirMount {
		mounts = append([]api.Mount{{Type: api.MountBind, Source: path.Join(taskDir, "run-secrets"), Target: SecretsDir, ReadOnly: true}}, mounts...)
	}
	return files, mounts, missing
}

func valueKey(kind api.SecretKind, id string) string { return string(kind) + "/" + id }

func needsSecrets(t api.Task) bool {
	return len(t.Spec.Container.Secrets)+len(t.Spec.Container.Configs) > 0
}

// openValues opens the values of the assignments with the node's cache key.
func openValues(as *api.Assignments, key []byte) (map[string][]byte, error) {
	out := map[string][]byte{}
	if len(as.Secrets) == 0 {
		return out, nil
	}
	if len(key) == 0 {
		return out, nil // after a restart, until a manager answers
	}
	for _, v := range as.Secrets {
		pt, err := secretbox.Open(key, v.Sealed, secretbox.ValueAAD(string(v.Kind), v.ID))
		if err != nil {
			return nil, fmt.Errorf("open %s %q: %w", v.Kind, v.Name, err)
		}
		out[valueKey(v.Kind, v.ID)] = pt
	}
	return out, nil
}

// withSecrets prepares the tasks for the executor: it writes their files to
// the tmpfs and adds the mounts. A task whose values the agent cannot open
// (no manager reached since the node restarted, so no cache key) keeps the
// files it already has; without them it is held back (and logged), and
// starts as soon as a manager delivers the key. On a node without a secret
// store such tasks are held back too: the rest of the node still runs.
func (a *Agent) withSecrets(as *api.Assignments) ([]api.Task, error) {
	need := false
	for _, t := range as.Tasks {
		if needsSecrets(t) && !t.DesiredState.Terminal() {
			need = true
			break
		}
	}
	if !need && a.cfg.Secrets == nil {
		return as.Tasks, nil
	}
	if a.cfg.Secrets == nil {
		out := make([]api.Task, 0, len(as.Tasks))
		for _, t := range as.Tasks {
			if needsSecrets(t) && !t.DesiredState.Terminal() {
				a.log.Warn("task held back: it mounts secrets or configs and this node has no secret tmpfs", zap.String("task_id", t.ID))
				continue
			}
			out = append(out, t)
		}
		return out, nil
	}
	a.mu.Lock()
	key := a.cacheKey
	a.mu.Unlock()
	values, err := openValues(as, key)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, v := range values {
			clear(v)
		}
	}()
	files := map[string][]SecretFile{}
	var keep []string
	out := make([]api.Task, 0, len(as.Tasks))
	for _, t := range as.Tasks {
		if !needsSecrets(t) || t.DesiredState.Terminal() {
			out = append(out, t)
			continue
		}
		dir := a.cfg.Secrets.TaskDir(t.ID)
		fs, mounts, missing := secretLayout(t, dir, values)
		switch {
		case len(missing) == 0:
			files[t.ID] = fs
		case a.cfg.Secrets.Has(t.ID):
			keep = append(keep, t.ID)
		default:
			msg := "waiting for " + strings.Join(missing, ", ") + " from a manager"
			a.log.Warn("task held back: "+msg, zap.String("task_id", t.ID))
			continue
		}
		c := t.Spec.Container
		c.Mounts = append(append([]api.Mount(nil), c.Mounts...), mounts...)
		t.Spec.Container = c
		out = append(out, t)
	}
	if err := a.cfg.Secrets.Set(files, keep); err != nil {
		return nil, fmt.Errorf("secret files: %w", err)
	}
	return out, nil
}
