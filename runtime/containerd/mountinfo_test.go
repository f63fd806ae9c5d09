package containerd

import (
	"strings"
	"testing"
)

// Excerpts of /proc/self/mountinfo from a hybrid host (systemd's default
// before v248: v1 controllers plus cgroup2 at .../unified) and from a pure
// cgroup v2 host (Debian 12, Ubuntu 22.04 and later, most edge boxes).
const (
	hybridMountinfo = `25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 25 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
32 31 0:29 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
33 31 0:30 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
35 31 0:32 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
`
	pureV2Mountinfo = `22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 22 0:25 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
27 22 0:26 / /sys/fs/pstore rw,nosuid,nodev,noexec,relatime shared:5 - pstore pstore rw
`
)

func TestCgroup2Mount(t *testing.T) {
	for _, c := range []struct {
		name, mountinfo, want string
	}{
		{"hybrid", hybridMountinfo, "/sys/fs/cgroup/unified"},
		{"pure v2", pureV2Mountinfo, "/sys/fs/cgroup"},
		// A bind mount elsewhere, listed first, is not where runc looks.
		{"bind mount first", "90 1 0:25 / /run/warren/cg rw - cgroup2 cgroup2 rw\n" + pureV2Mountinfo, "/sys/fs/cgroup"},
		{"only elsewhere, escaped", `90 1 0:25 / /mnt/cg\040two rw shared:1 - cgroup2 none rw` + "\n", "/mnt/cg two"},
	} {
		got, err := Cgroup2Mount(strings.NewReader(c.mountinfo))
		if err != nil || got != c.want {
			t.Errorf("%s: Cgroup2Mount = %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	// v1 only: no cgroup2 anywhere is an error, not a guess.
	v1 := strings.ReplaceAll(hybridMountinfo, "cgroup2 cgroup2", "cgroup cgroup")
	if got, err := Cgroup2Mount(strings.NewReader(v1)); err == nil {
		t.Errorf("v1-only host: got %q, want an error", got)
	}
}

// TestCgroupMounts: leave must find the node's cgroup under every
// controller of a hybrid host and the one tree of a pure v2 host.
func TestCgroupMounts(t *testing.T) {
	for _, c := range []struct {
		name, mountinfo string
		want            []string
	}{
		{"hybrid", hybridMountinfo, []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids"}},
		{"pure v2", pureV2Mountinfo, []string{"/sys/fs/cgroup"}},
	} {
		got, err := CgroupMounts(strings.NewReader(c.mountinfo))
		if err != nil || strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("%s: %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	if _, err := RemoveCgroups("../etc"); err == nil {
		t.Error("RemoveCgroups accepted a parent outside the hierarchy")
	}
}
