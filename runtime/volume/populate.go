package volume

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/warrenhq/warren/controlplane/api"
)

// Populate implements runtime.Volumes: an empty volume gets the image's
// content at the mount target, and the owner and mode of that directory,
// the first time it is mounted (docker's behaviour, which the postgres and
// mariadb images rely on: their data directory belongs to their user).
func (m *Manager) Populate(ctx context.Context, task *api.Task, rootfs func(ctx context.Context, fn func(root string) error) error) error {
	for _, mt := range task.Spec.Container.Mounts {
		if mt.Type != api.MountVolume || mt.NoCopy {
			continue
		}
		if err := m.populateOne(ctx, mt, rootfs); err != nil {
			return fmt.Errorf("volume %s: copy image content at %s: %w", mt.Source, mt.Target, err)
		}
	}
	return nil
}

func (m *Manager) populateOne(ctx context.Context, mt api.Mount, rootfs func(ctx context.Context, fn func(root string) error) error) error {
	unlock := m.lock(mt.Source)
	defer unlock()
	dst := m.Path(mt.Source)
	empty, err := isEmptyDir(dst)
	if err != nil || !empty {
		return err
	}
	return rootfs(ctx, func(root string) error {
		src, err := resolveIn(root, mt.Target)
		if err != nil {
			return err
		}
		fi, err := os.Lstat(src)
		if errors.Is(err, os.ErrNotExist) {
			return nil // nothing at the target in the image
		}
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return nil
		}
		return CopyTree(src, dst)
	})
}

func isEmptyDir(p string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}

// resolveIn is p inside root, with symlinks in the image resolved against
// root rather than against the node's own filesystem (an image's
// /var/run -> /run must not lead to the node's /run).
func resolveIn(root, p string) (string, error) {
	cur := "/"
	rest := strings.Split(path.Clean("/"+p), "/")
	for hops := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		if c == "" || c == "." {
			continue
		}
		if c == ".." {
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		fi, err := os.Lstat(filepath.Join(root, next))
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("resolve %s: too many symlinks", p)
		}
		link, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if path.IsAbs(link) {
			cur = "/"
		}
		rest = append(strings.Split(link, "/"), rest...)
	}
	return filepath.Join(root, cur), nil
}

// CopyTree copies the directory src into the existing directory dst:
// regular files, directories and symlinks with their owner, mode and
// times; dst itself takes src's owner and mode. Device nodes, sockets and
// pipes are skipped (an image's data directory holds none).
func CopyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch mode := fi.Mode(); {
		case mode.IsDir():
			if rel != "." {
				if err := os.Mkdir(to, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
					return err
				}
			}
		case mode&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, to); err != nil {
				return err
			}
			return lchown(to, fi)
		case mode.IsRegular():
			if err := copyFile(p, to, mode.Perm()); err != nil {
				return err
			}
		default:
			return nil
		}
		if err := lchown(to, fi); err != nil {
			return err
		}
		// chmod after chown: chown clears setuid/setgid bits.
		if err := os.Chmod(to, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
			return err
		}
		return os.Chtimes(to, fi.ModTime(), fi.ModTime())
	})
}

func copyFile(from, to string, perm fs.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
