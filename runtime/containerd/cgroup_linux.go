package containerd

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/warrenhq/warren/runtime"
)

// cgroupLayout says where the hierarchies are. On hybrid hosts runc (cgroup
// v1 driver) places tasks in the v1 controllers; whether it also places
// them in the v2 hierarchy depends on its version, so ensureV2 checks and
// moves the task's init process when it did not.
type cgroupLayout struct {
	v2Root  string // cgroup2 mount
	unified bool   // v2 only: runc uses it directly
}

func detectCgroups(v2Root string) cgroupLayout {
	var st unix.Statfs_t
	unified := unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
	if v2Root == "" {
		// The kernel's mount table says where cgroup2 is; the usual places
		// remain the answer when it cannot be read.
		if p, err := FindCgroup2Mount(); err == nil {
			v2Root = p
		} else if unified {
			v2Root = "/sys/fs/cgroup"
		} else {
			v2Root = "/sys/fs/cgroup/unified"
		}
	}
	return cgroupLayout{v2Root: v2Root, unified: unified}
}

// v2Of returns the v2 cgroup of pid (the "0::" line of /proc/pid/cgroup).
func v2Of(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			return p, nil
		}
	}
	return "", fmt.Errorf("pid %d has no cgroup v2 entry", pid)
}

// ensureV2 puts pid into <v2Root>/<cgPath> unless it is there already.
// Called between NewTask and Start, so every process the task forks
// inherits it.
func (l cgroupLayout) ensureV2(pid int, cgPath string) (moved bool, err error) {
	cur, err := v2Of(pid)
	if err != nil {
		return false, err
	}
	if filepath.Clean(cur) == filepath.Clean(cgPath) {
		return false, nil
	}
	dir := filepath.Join(l.v2Root, cgPath)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("cgroup v2 %s: %w", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return false, fmt.Errorf("cgroup v2 move pid %d: %w", pid, err)
	}
	return true, nil
}

// remove deletes the task's v2 cgroup when Warren created it (hybrid hosts).
func (l cgroupLayout) remove(cgPath string) {
	if !l.unified {
		_ = os.Remove(filepath.Join(l.v2Root, cgPath))
	}
}

// stats reads CPU and memory use of a task's cgroup.
func (l cgroupLayout) stats(cgPath string) (runtime.Stats, error) {
	var s runtime.Stats
	if l.unified {
		dir := filepath.Join(l.v2Root, cgPath)
		b, err := os.ReadFile(filepath.Join(dir, "cpu.stat"))
		if err != nil {
			return s, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
				us, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
				s.CPUSeconds = float64(us) / 1e6
			}
		}
		m, err := readUint(filepath.Join(dir, "memory.current"))
		s.MemoryBytes = m
		return s, err
	}
	ns, err := readUint(filepath.Join("/sys/fs/cgroup/cpuacct", cgPath, "cpuacct.usage"))
	if err != nil {
		return s, err
	}
	s.CPUSeconds = float64(ns) / 1e9
	s.MemoryBytes, err = readUint(filepath.Join("/sys/fs/cgroup/memory", cgPath, "memory.usage_in_bytes"))
	return s, err
}

func readUint(p string) (uint64, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}
