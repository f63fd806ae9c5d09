package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// SecretFile is one file of a task's secrets and configs; Path is relative
// to the task's directory.
type SecretFile struct {
	Path     string
	Data     []byte
	UID, GID uint32
	Mode     uint32
	// InPlace files are bind-mounted by themselves: a rename would leave
	// the container on the old inode, so they are rewritten in it.
	InPlace bool
}

// SecretFS keeps each task's secret and config files under one directory
// on a tmpfs mounted for the purpose (secrets_linux.go), so no value is
// ever written to a disk. The tmpfs outlives the agent process (a restarted
// agent finds the files of running tasks) but not a reboot.
//
// Set is declarative: it may be called again with the same files and then
// touches nothing. A changed file under a directory mount is replaced
// atomically: written to a temporary file in the same directory, then
// renamed over the old one, so a task reading it sees the old or the new
// value, never a mix.
type SecretFS struct {
	root string
	mu   sync.Mutex
}

// NewSecretFS mounts a tmpfs at root (or reuses one already there).
func NewSecretFS(root string) (*SecretFS, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("secret tmpfs %s: %w", root, err)
	}
	if err := mountTmpfs(root); err != nil {
		return nil, fmt.Errorf("secret tmpfs %s: %w", root, err)
	}
	if err := os.Chmod(root, 0o700); err != nil {
		return nil, fmt.Errorf("secret tmpfs %s: %w", root, err)
	}
	return &SecretFS{root: root}, nil
}

// Root is the tmpfs mount point.
func (s *SecretFS) Root() string { return s.root }

// TaskDir is the directory of a task's files.
func (s *SecretFS) TaskDir(taskID string) string { return filepath.Join(s.root, taskID) }

// Has reports whether the task has files here.
func (s *SecretFS) Has(taskID string) bool {
	_, err := os.Stat(s.TaskDir(taskID))
	return err == nil
}

// Set makes the tmpfs hold exactly files for the listed tasks, leaves the
// tasks in keep alone, and removes every other task's directory.
func (s *SecretFS) Set(files map[string][]SecretFile, keep []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for id, fs := range files {
		if err := s.setTask(id, fs); err != nil {
			errs = append(errs, fmt.Errorf("task %s: %w", id, err))
		}
	}
	wanted := map[string]bool{}
	for id := range files {
		wanted[id] = true
	}
	for _, id := range keep {
		wanted[id] = true
	}
	ents, err := os.ReadDir(s.root)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, e := range ents {
		if !wanted[e.Name()] {
			if err := os.RemoveAll(filepath.Join(s.root, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func validTaskID(id string) bool {
	return id != "" && id != "." && id != ".." && !strings.ContainsAny(id, "/\\")
}

func (s *SecretFS) setTask(id string, files []SecretFile) error {
	if !validTaskID(id) {
		return fmt.Errorf("invalid task id %q", id)
	}
	dir := s.TaskDir(id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	want := map[string]bool{}
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if rel, err := filepath.Rel(dir, p); err != nil || rel == "." || strings.HasPrefix(rel, "..") {
			return fmt.Errorf("file %q: outside the task directory", f.Path)
		}
		want[p] = true
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := writeSecretFile(p, f); err != nil {
			return fmt.Errorf("file %s: %w", f.Path, err)
		}
	}
	// A mount the task no longer has loses its file.
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !want[p] {
			return os.Remove(p)
		}
		return nil
	})
}

func writeSecretFile(p string, f SecretFile) error {
	mode := fs.FileMode(f.Mode & 0o777)
	if cur, err := os.ReadFile(p); err == nil && bytes.Equal(cur, f.Data) && sameOwner(p, f.UID, f.GID, mode) {
		return nil
	}
	if f.InPlace {
		if _, err := os.Stat(p); err == nil {
			// Bind-mounted file: keep the inode the container holds.
			fh, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				return err
			}
			_, werr := fh.Write(f.Data)
			return errors.Join(werr, fh.Chown(int(f.UID), int(f.GID)), fh.Chmod(mode), fh.Close())
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(f.Data)
	if err := errors.Join(werr, tmp.Chown(int(f.UID), int(f.GID)), tmp.Chmod(mode), tmp.Close()); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}
