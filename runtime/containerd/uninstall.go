package containerd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
)

// Uninstall removes what this node created in containerd: every container
// it owns and, when withImages is set, every image of its namespace and the
// namespace itself (images are the operator's to keep otherwise: a node that
// joins again reuses them). It returns what it removed, for the operator.
func (e *Executor) Uninstall(ctx context.Context, withImages bool) ([]string, error) {
	var removed []string
	owned, err := e.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range owned {
		if err := e.RemoveContainer(ctx, c.ContainerID); err != nil {
			return removed, err
		}
		removed = append(removed, "container "+c.ContainerID)
	}
	if !withImages {
		return removed, nil
	}
	ctx = e.ns(ctx)
	imgs, err := e.client.ImageService().List(ctx)
	if err != nil {
		return removed, fmt.Errorf("list images: %w", err)
	}
	for i, im := range imgs {
		var opts []images.DeleteOpt
		if i == len(imgs)-1 {
			// The last delete collects garbage before it returns, so the
			// blobs and snapshots are gone when the namespace is deleted.
			opts = append(opts, images.SynchronousDelete())
		}
		if err := e.client.ImageService().Delete(ctx, im.Name, opts...); err != nil && !errdefs.IsNotFound(err) {
			return removed, fmt.Errorf("remove image %s: %w", im.Name, err)
		}
		removed = append(removed, "image "+im.Name)
	}
	ls, err := e.client.LeasesService().List(ctx)
	if err != nil {
		return removed, fmt.Errorf("list leases: %w", err)
	}
	for _, l := range ls {
		if err := e.client.LeasesService().Delete(ctx, l); err != nil && !errdefs.IsNotFound(err) {
			return removed, fmt.Errorf("remove lease %s: %w", l.ID, err)
		}
	}
	others, err := e.client.Containers(ctx)
	if err != nil {
		return removed, fmt.Errorf("list containers: %w", err)
	}
	if len(others) > 0 {
		// Not ours to remove (another node or tool shares the namespace).
		return removed, nil
	}
	if err := e.client.NamespaceService().Delete(ctx, e.o.Namespace); err != nil && !errdefs.IsNotFound(err) {
		return removed, fmt.Errorf("remove containerd namespace %s: %w", e.o.Namespace, err)
	}
	return append(removed, "containerd namespace "+e.o.Namespace), nil
}

// RemoveCgroups deletes the node's cgroup parent in every cgroup hierarchy
// mounted here: the v1 controllers and the v2 tree of a hybrid host, or the
// one v2 tree. A cgroup is removed with rmdir, deepest first; one that still
// holds a process stays and is reported.
func RemoveCgroups(parent string) ([]string, error) {
	if parent == "" || strings.Contains(parent, "..") {
		return nil, fmt.Errorf("cgroup parent %q: want a relative path without ..", parent)
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("cgroup mounts: %w", err)
	}
	defer f.Close()
	mounts, err := CgroupMounts(f)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, m := range mounts {
		dir := filepath.Join(m, parent)
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		var dirs []string
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
			}
		}
		removed = append(removed, "cgroup "+dir)
	}
	return removed, errors.Join(errs...)
}

// CgroupMounts lists the mount points of every cgroup (v1) and cgroup2
// filesystem in mountinfo, once each.
func CgroupMounts(mountinfo io.Reader) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(mountinfo)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 1 || (g[0] != "cgroup" && g[0] != "cgroup2") {
			continue
		}
		p := unescapeMountinfo(f[4])
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return out, nil
}
